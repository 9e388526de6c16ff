"""Fixtures for the data tests: a tiny generated image folder and its prepared builder."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from experts.data.builders import ImageFolderUpstream, ImageFolderUpstreamConfig

# Colour and shape are two "is-a" axes, so every class has two parents.
HIERARCHY = """
thing:
shape: thing
circle: shape
square: shape
colour: thing
red: colour
blue: colour
red_circle: circle red
blue_circle: circle blue
red_square: square red
blue_square: square blue
triangle: shape            # a class with one parent
"""
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}
IMAGES_PER_CLASS = 8


def draw(label: str, index: int, size=(24, 20)) -> Image.Image:
    """A shape on white, shifted by ``index`` so that no two images are equal."""
    colour = COLOURS.get(label.split("_")[0], (20, 160, 20))
    image = Image.new("RGB", size, (255, 255, 255))
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    box = (2 + index % 4, 2 + index // 4, 14 + index % 4, 14 + index // 4)
    if label.endswith("circle"):
        draw.ellipse(box, fill=colour)
    elif label.endswith("square"):
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], colour)
    return image


def make_folder(
    root: str, labels=("red_circle", "blue_circle", "red_square", "blue_square", "triangle")
):
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    with open(os.path.join(root, "hierarchy.txt"), "w") as f:
        f.write(HIERARCHY)
    for label in labels:
        folder = os.path.join(root, "images", label)
        os.makedirs(folder, exist_ok=True)
        for i in range(IMAGES_PER_CLASS):
            image = draw(label, i)
            # Mixed formats and modes, as real folders have.
            if i == 0:
                image.convert("L").save(os.path.join(folder, f"{i}.png"))
            elif i == 1:
                image.convert("RGBA").save(os.path.join(folder, f"{i}.PNG"))
            else:
                image.save(os.path.join(folder, f"{i}.jpg"), quality=95)
    return root


def prepare_folder_builder(manual_dir: str, data_dir: str, **config):
    config = ImageFolderUpstreamConfig(name="test", validation_percent=25, **config)
    builder = ImageFolderUpstream(config=config, data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
    )
    return builder


@pytest.fixture(scope="session")
def folder_builder(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    manual = make_folder(str(root / "manual"))
    return prepare_folder_builder(manual, str(root / "tfds"))


def ink_centroid_x(image: np.ndarray) -> float:
    """Horizontal centre of mass of the non-white pixels, in [0, 1]."""
    ink = 1.0 - np.asarray(image, np.float32).mean(axis=-1) / (
        255.0 if image.dtype == np.uint8 else 1.0
    )
    xs = np.arange(ink.shape[1]) / (ink.shape[1] - 1)
    return float((ink.sum(axis=0) * xs).sum() / ink.sum())

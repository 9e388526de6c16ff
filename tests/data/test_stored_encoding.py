"""The image-folder builder stores RGB JPEG/PNG files as they are and converts the rest."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image, ImageFilter

from experts.data import pipelines, upstream
from experts.data.builders.image_folder_upstream import encoded_image
from tests.data.conftest import HIERARCHY, draw, prepare_folder_builder

MAX_SIZE = 32
EXIF_ROTATED = 6  # EXIF Orientation "rotate 90 degrees clockwise to display"


def _rotated_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = EXIF_ROTATED
    return exif


def _photo(size=(24, 20), seed=0) -> Image.Image:
    """A shape over a colour gradient, softened as a lens does: what JPEG codes well."""
    y, x = np.mgrid[: size[1], : size[0]] / max(size)
    gradient = np.stack([x, y, 1 - x], axis=-1) * 120
    picture = np.asarray(draw("red_circle", seed, size), np.float32) * 0.5 + gradient
    return Image.fromarray(picture.astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))


def _save_all(folder: str) -> None:
    """One file of each kind the builder meets in a real folder."""
    photo = _photo()
    photo.save(os.path.join(folder, "rgb.jpg"), quality=90)
    photo.save(os.path.join(folder, "rotated.jpg"), quality=90, exif=_rotated_exif())
    photo.save(
        os.path.join(folder, "camera.jpg"),
        format="MPO",
        save_all=True,
        append_images=[_photo(seed=1)],
    )
    photo.save(os.path.join(folder, "rgb.png"))
    photo.convert("L").save(os.path.join(folder, "gray.jpg"), quality=90)
    photo.convert("CMYK").save(os.path.join(folder, "cmyk.jpg"), quality=90)
    photo.convert("RGBA").save(os.path.join(folder, "rgba.png"))
    photo.convert("P").save(os.path.join(folder, "palette.gif"))
    photo.save(os.path.join(folder, "rgb.webp"))
    big = _photo((64, 48), seed=2)
    big.save(os.path.join(folder, "big.jpg"), quality=90, exif=_rotated_exif())
    big.save(os.path.join(folder, "big.png"))


AS_IS = ("rgb.jpg", "rotated.jpg", "camera.jpg", "rgb.png")
# name -> (format stored, decoded shape)
CONVERTED = {
    "gray.jpg": ("JPEG", (20, 24, 3)),
    "cmyk.jpg": ("JPEG", (20, 24, 3)),
    "rgba.png": ("PNG", (20, 24, 3)),
    "palette.gif": ("PNG", (20, 24, 3)),
    "rgb.webp": ("PNG", (20, 24, 3)),
    # Shrunk to MAX_SIZE, and not turned by its EXIF orientation.
    "big.jpg": ("JPEG", (24, 32, 3)),
    "big.png": ("PNG", (24, 32, 3)),
}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """(folder of the source files, builder prepared with max_size, stored bytes by name)."""
    root = tmp_path_factory.mktemp("mixed")
    manual = root / "manual"
    folder = manual / "images" / "triangle"
    folder.mkdir(parents=True)
    (manual / "hierarchy.txt").write_text(HIERARCHY)
    _save_all(str(folder))
    builder = prepare_folder_builder(str(manual), str(root / "tfds"), max_size=MAX_SIZE)
    stored = {}
    for split in builder.info.splits:
        ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
        for ex in ds.as_numpy_iterator():
            stored[os.path.basename(ex["style"].decode())] = ex["image"]
    return str(folder), builder, stored


def test_rgb_jpeg_and_png_are_stored_as_they_came(mixed):
    folder, _, stored = mixed
    assert sorted(stored) == sorted([*AS_IS, *CONVERTED])
    for name in AS_IS:
        with open(os.path.join(folder, name), "rb") as f:
            assert stored[name] == f.read(), name


@pytest.mark.parametrize("name", sorted(CONVERTED))
def test_converted_images_are_rgb_and_reencoded(mixed, name):
    folder, _, stored = mixed
    fmt, shape = CONVERTED[name]
    with Image.open(io.BytesIO(stored[name])) as image:
        assert (image.format, image.mode) == (fmt, "RGB")
    # No channels= here: the stored image itself has three.
    decoded = tf.io.decode_image(stored[name], expand_animations=False).numpy()
    assert decoded.shape == shape
    with Image.open(os.path.join(folder, name)) as source:
        expected = np.asarray(source.convert("RGB").resize(shape[1::-1]), np.float32)
    # Same picture (a JPEG generation or a shrink away), not merely the same shape.
    assert np.abs(decoded.astype(np.float32) - expected).mean() < 4, name


def test_exif_orientation_is_ignored_as_by_tf(mixed):
    _, _, stored = mixed
    # Stored as is: TF decodes the pixels as encoded, EXIF orientation or not.
    assert tf.io.decode_image(stored["rotated.jpg"]).shape == (20, 24, 3)


def test_feature_records_no_single_encoding(mixed):
    _, builder, _ = mixed
    assert builder.info.features["image"].encoding_format is None


def test_dataset_reads_through_the_pipelines(mixed):
    _, builder, stored = mixed
    info = upstream.load_info(builder)
    seen = 0
    for split in builder.info.splits:
        ds = pipelines.whole(builder, info, split, batch_size=3, image_size=16, training=False)
        for batch in ds.as_numpy_iterator():
            assert batch["image"].shape[1:] == (16, 16, 3)
            assert batch["image"].dtype == np.float32
            seen += len(batch["label"])
    assert seen == len(stored)
    train = pipelines.whole(builder, info, "train", batch_size=4, image_size=16, training=True)
    assert next(iter(train))["image"].shape == (4, 16, 16, 3)


def test_truncated_jpeg_names_the_file(tmp_path):
    path = str(tmp_path / "cut.jpg")
    buffer = io.BytesIO()
    _photo((96, 64)).save(buffer, format="JPEG", quality=90)
    with open(path, "wb") as f:
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ValueError, match=r"cut.jpg: not a readable image"):
        encoded_image(path, max_size=None)


def test_within_max_size_jpeg_is_kept(tmp_path):
    path = str(tmp_path / "small.jpg")
    _photo().save(path, quality=90)
    with open(path, "rb") as f:
        assert encoded_image(path, max_size=24) == f.read()  # longer side == max_size

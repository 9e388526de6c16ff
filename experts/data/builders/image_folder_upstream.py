"""tfds builder for a user's own upstream data: an image folder plus a hierarchy file.

Put the data in tfds' manual_dir (default ``<data_dir>/downloads/manual``)::

    <manual_dir>/hierarchy.txt            # format: experts/data/hierarchy.py
    <manual_dir>/images/<class>/*.jpg     # one subfolder per class; .jpeg/.png/.bmp/.gif/.webp too

Every class folder name must be a node of the hierarchy (ImageNet-21k: a WordNet id per
folder, the ancestors' "is-a" links in hierarchy.txt). The validation split takes
``validation_percent`` of every class's images by a hash of the file's name, so it is
stable when images are added.

Images are stored as they came: an RGB JPEG or PNG within the config's ``max_size`` is
stored as the file's own bytes (decoded once, by the input pipelines' decoder, to check
that it reads them), which is fewer bytes and a faster decode than a lossless re-encode
of a photograph. The others are converted to RGB (CMYK, grayscale, palette, alpha), shrunk
so their longer side is at most ``max_size`` when the config sets it, and re-encoded: a
JPEG as JPEG at quality ``JPEG_QUALITY``, any other format (GIF, BMP, WebP, PNG) as PNG.
EXIF orientation is ignored, as TF's decoder and the ImageNet input pipelines ignore it:
an image is stored as its pixels are encoded, converted or not (a kept file keeps its
EXIF and ICC metadata; nothing reads them, as Pillow's conversion never did).

    builder = ImageFolderUpstream(data_dir=..., config=ImageFolderUpstreamConfig(...))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=...))
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import math
import os

import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from experts.data import upstream
from experts.data.hierarchy import Hierarchy, HierarchyError
from fanout import image_folders

IMAGE_EXTENSIONS = image_folders.IMAGE_EXTENSIONS  # the downstream image_folder task's too
# PIL's names of the formats stored as they are when RGB. MPO is the multi-picture JPEG
# many cameras write: its first picture is a plain JPEG stream, which is what TF decodes.
JPEG_FORMATS = ("JPEG", "MPO")
STORED_AS_IS = (*JPEG_FORMATS, "PNG")
# A converted JPEG is one more lossy generation. 95 is the top of Pillow's advised range
# (above it files grow fast with hardly any gain); tfds' imagenet2012 re-encodes its dozen
# CMYK and PNG files at 100, which on a shrunk photograph costs about twice the bytes.
JPEG_QUALITY = 95


@dataclasses.dataclass(eq=False)
class ImageFolderUpstreamConfig(tfds.core.BuilderConfig):
    max_size: int | None = None  # longer side in pixels; None keeps the originals
    validation_percent: int = 2
    experts: upstream.ExpertChoice = dataclasses.field(default_factory=upstream.ExpertChoice)


def _in_validation(name: str, percent: int) -> bool:
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10000 < percent * 100


def scan_folder(manual_dir: str, validation_percent: int) -> tuple[Hierarchy, list[str], dict]:
    """Reads the hierarchy and lists ``split -> [(path, class)]``; checks the layout."""
    hierarchy_path = os.path.join(manual_dir, "hierarchy.txt")
    images_dir = os.path.join(manual_dir, "images")
    for path in (hierarchy_path, images_dir):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} is missing: see ImageFolderUpstream's docstring")
    hierarchy = Hierarchy.load(hierarchy_path)
    # Hidden entries (.DS_Store, ._x.jpg, .git) are the file system's, not images; a
    # symlinked class folder leading back into the tree is refused.
    labels = image_folders.class_folders(images_dir)
    if not labels:
        raise FileNotFoundError(f"{images_dir} has no class subfolders")
    files: dict[str, list[tuple[str, str]]] = {"train": [], "validation": []}
    for label in labels:
        if label not in hierarchy:
            raise HierarchyError(
                f"{images_dir}/{label}: label {label!r} has no node in {hierarchy_path}"
            )
        folder = os.path.join(images_dir, label)
        names = sorted(n for n in os.listdir(folder) if image_folders.is_image_name(n))
        if not names:
            raise FileNotFoundError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        for name in names:
            split = (
                "validation" if _in_validation(f"{label}/{name}", validation_percent) else "train"
            )
            files[split].append((os.path.join(folder, name), label))
    return hierarchy, labels, files


def check_splits(images_dir: str, files: dict, validation_percent: int) -> None:
    """Both splits need an image (tfds refuses an empty one). Which images go to
    validation is fixed by their names' hash, so the count needed is an expectation."""
    total = sum(len(pairs) for pairs in files.values())
    for split, pairs in files.items():
        if not pairs:
            percent = validation_percent if split == "validation" else 100 - validation_percent
            needed = math.ceil(100 / max(percent, 1))
            raise ValueError(
                f"{images_dir}: none of its {total} images falls in the {split} split "
                f"({percent}% of the images, chosen by a hash of each file's name); add "
                f"images: about {needed} in all give the split one"
            )


def encoded_image(path: str, max_size: int | None) -> bytes:
    """The bytes stored for the image file at ``path``: its own when they need no
    conversion, else the converted image re-encoded (see the module docstring)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header, not the pixels
            if _needs_no_conversion(image, max_size) and _pipelines_decode(data):
                return data
            return _converted(image, max_size)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None


def _needs_no_conversion(image: Image.Image, max_size: int | None) -> bool:
    return (
        image.format in STORED_AS_IS
        and image.mode == "RGB"
        and not (max_size and max(image.size) > max_size)
    )


def _pipelines_decode(data: bytes) -> bool:
    """Whether the input pipelines' decoder reads ``data``: the one decode that validates
    a kept file. A truncated file fails here (and then in Pillow); a file only Pillow
    reads is converted."""
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except tf.errors.InvalidArgumentError:
        return False
    return True


def _converted(image: Image.Image, max_size: int | None) -> bytes:
    """RGB, shrunk to ``max_size``, re-encoded: JPEG for a JPEG source, else PNG (lossless,
    as a GIF, BMP or PNG is often a drawing, which JPEG would smear)."""
    rgb = image.convert("RGB")  # decodes: a truncated or corrupt file fails here
    if max_size and max(rgb.size) > max_size:
        rgb.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if image.format in JPEG_FORMATS:
        rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        rgb.save(buffer, format="PNG")
    return buffer.getvalue()


class ImageFolderUpstream(tfds.core.GeneratorBasedBuilder):
    """A user's upstream image folder with an "is-a" hierarchy over its classes."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Image folder plus hierarchy file.",
        "2.0.0": "Images stored as they came (RGB JPEG/PNG bytes), not re-encoded as PNG.",
    }
    BUILDER_CONFIGS = [ImageFolderUpstreamConfig(name="default")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=upstream.features((None, None, 3), encoding_format=None),
            supervised_keys=("image", "label"),
            metadata=tfds.core.MetadataDict(),
            description=__doc__,
        )

    def _split_generators(self, dl_manager):
        config = self.builder_config
        manual_dir = os.fspath(dl_manager.manual_dir)
        hierarchy, labels, files = scan_folder(manual_dir, config.validation_percent)
        check_splits(os.path.join(manual_dir, "images"), files, config.validation_percent)
        counts = {
            split: {lab: n for lab, n in collections.Counter(c for _, c in pairs).items()}
            for split, pairs in files.items()
        }
        counts = {s: {lab: c.get(lab, 0) for lab in labels} for s, c in counts.items()}
        descriptions = {lab: lab for lab in labels}
        upstream.record(self.info, hierarchy, labels, counts, descriptions, config.experts)
        return {s: self._generate_examples(pairs) for s, pairs in files.items()}

    def _generate_examples(self, pairs):
        max_size = self.builder_config.max_size
        for path, label in pairs:
            key = f"{label}/{os.path.basename(path)}"
            yield key, {"image": encoded_image(path, max_size), "label": label, "style": key}

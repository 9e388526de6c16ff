r"""Stored bytes and decode speed of real JPEG photographs: what the image-folder builder
stores against the PNG re-encode of its version 1.0.0 (prints figures).

    python -m experts.bench.encoding --folder=my_photos
    python -m experts.bench.encoding --folder=my_photos --max_size=512 --rounds=5

Every ``.jpg``/``.jpeg`` under ``--folder`` (recursively, links followed, files with the
same bytes counted once) is encoded both ways: as the builder stores it now
(``encoded_image``: an RGB JPEG's own bytes, a JPEG re-encode of the others) and as
version 1.0.0 did (decoded to RGB by Pillow, then ``tf.io.encode_png``, which is what
tfds' PNG image feature runs). ``--max_size`` adds the builder's ``max<N>`` configs:
both sides shrink the images first, so both re-encode, JPEG at quality ``JPEG_QUALITY``
against PNG. Encoding is timed once per side (the cost of preparing the dataset);
decoding is the input pipelines' call,
``tf.io.decode_image(channels=3, expand_animations=False)``, one image at a time, each
image both ways back to back in alternating order, so that machine load hits both sides
alike; each side's time is the median over the rounds. Use real photographs: a drawing or an image re-encoded from a few crops
says little about either codec.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time

import numpy as np
import tensorflow as tf
from absl import app, flags
from PIL import Image

from experts.data.builders.image_folder_upstream import encoded_image
from fanout import cli

JPEG_EXTENSIONS = (".jpg", ".jpeg")


def find_jpegs(folder: str) -> list[str]:
    """The distinct JPEG files under ``folder``, by path."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--folder={folder} is not a folder")
    seen: dict[str, str] = {}
    for root, _, names in os.walk(folder, followlinks=True):
        for name in sorted(names):
            path = os.path.join(root, name)
            if name.lower().endswith(JPEG_EXTENSIONS) and not name.startswith("."):
                with open(path, "rb") as f:
                    seen.setdefault(hashlib.sha256(f.read()).hexdigest(), path)
    if not seen:
        raise FileNotFoundError(f"--folder={folder} holds no {'/'.join(JPEG_EXTENSIONS)} files")
    return sorted(seen.values())


def png_reencode(path: str, max_size: int | None) -> bytes:
    """What the builder stored before: Pillow's RGB pixels, shrunk, as tfds' PNG."""
    with Image.open(path) as image:
        image = image.convert("RGB")
    if max_size and max(image.size) > max_size:
        image.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    return tf.io.encode_png(np.asarray(image)).numpy()


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _decode(encoded):
    return tf.shape(tf.io.decode_image(encoded, channels=3, expand_animations=False))


def median_seconds(sides: dict[str, list[bytes]], rounds: int) -> dict[str, float]:
    """Per side, the median over rounds of the seconds its images take to decode. Each
    image is decoded on every side back to back, in alternating order, so that a change
    of machine load (other work on the cores) hits the sides alike."""
    names = list(sides)
    for name in names:  # warm-up: tracing and first-touch costs
        _decode(sides[name][0]).numpy()
    totals: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        spent = dict.fromkeys(names, 0.0)
        for i in range(len(sides[names[0]])):
            for name in names if (i + r) % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                _decode(sides[name][i]).numpy()
                spent[name] += time.perf_counter() - start
        for name in names:
            totals[name].append(spent[name])
    return {name: statistics.median(t) for name, t in totals.items()}


def measure(paths: list[str], max_size: int | None, rounds: int) -> dict[str, dict]:
    """Per builder version: the images' stored bytes, how many are the files' own bytes,
    the seconds to encode them all, and their decode speed (images/s and Mpx/s)."""
    encoders = {"2.0.0": encoded_image, "1.0.0": png_reencode}
    sides, encode_seconds = {}, {}
    for name, encode in encoders.items():  # once each: the cost of preparing the dataset
        start = time.perf_counter()
        sides[name] = [encode(path, max_size) for path in paths]
        encode_seconds[name] = time.perf_counter() - start
    pixels = sum(int(np.prod(_decode(encoded).numpy()[:2])) for encoded in sides["2.0.0"])
    seconds = median_seconds(sides, rounds)
    results = {}
    for name, images in sides.items():
        kept = 0
        for path, encoded in zip(paths, images, strict=True):
            with open(path, "rb") as f:
                kept += f.read() == encoded
        results[name] = {
            "bytes": sum(len(b) for b in images),
            "kept": kept,
            "encode_seconds": encode_seconds[name],
            "images_per_second": len(images) / seconds[name],
            "megapixels_per_second": pixels / 1e6 / seconds[name],
        }
    return results


def print_comparison(title: str, results: dict[str, dict], images: int) -> None:
    print(f"{title}:")
    print(
        f"  {'builder':36s} {'KB/image':>9s} {'total MB':>9s} {'encode s':>9s} "
        f"{'decode img/s':>12s} {'Mpx/s':>7s}"
    )
    for name, r in results.items():
        what = f"{r['kept']} kept, {images - r['kept']} re-encoded"
        what += " as PNG" if name == "1.0.0" else ""
        print(
            f"  {name + ' (' + what + ')':36s} {r['bytes'] / images / 1e3:9,.0f} "
            f"{r['bytes'] / 1e6:9,.1f} {r['encode_seconds']:9.1f} {r['images_per_second']:12.2f} "
            f"{r['megapixels_per_second']:7.1f}"
        )
    new, old = results["2.0.0"], results["1.0.0"]
    print(
        f"  ratio 2.0.0 / 1.0.0: bytes {new['bytes'] / old['bytes']:.3f}, decode speed "
        f"{new['images_per_second'] / old['images_per_second']:.2f}x"
    )


def define_flags() -> None:
    """Defines this binary's flags; called only when it runs as a program, so that
    importing the module never claims flag names other binaries also define."""
    flags.DEFINE_string("folder", None, "Folder of real JPEG photographs (searched deeply).")
    flags.DEFINE_integer("max_size", None, "Also compare with images shrunk to this side.")
    flags.DEFINE_integer("rounds", 3, "Timed decode rounds for each side.")
    flags.mark_flag_as_required("folder")


def describe(paths: list[str]) -> str:
    megapixels = []
    for path in paths:
        with Image.open(path) as image:
            megapixels.append(image.size[0] * image.size[1] / 1e6)
    return (
        f"{len(paths)} JPEG files: {statistics.median(megapixels):.2f} Mpx median "
        f"({min(megapixels):.2f} to {max(megapixels):.2f}), "
        f"{sum(os.path.getsize(p) for p in paths) / 1e6:.1f} MB"
    )


def main(argv):
    del argv
    fv = flags.FLAGS
    with cli.user_errors("experts.bench.encoding"):
        if fv.rounds < 1:
            raise ValueError(f"--rounds must be >= 1, got {fv.rounds}")
        paths = find_jpegs(fv.folder)
        print(f"{fv.folder}: {describe(paths)}; decode: medians of {fv.rounds} rounds")
        for max_size in [None, fv.max_size] if fv.max_size else [None]:
            results = measure(paths, max_size, fv.rounds)
            print_comparison(
                f"max_size {max_size}" if max_size else "original size", results, len(paths)
            )


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.flags_parser("experts.bench.encoding"))

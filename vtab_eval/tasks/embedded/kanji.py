"""Structured group: how many strokes a kanji has, binned, from KanjiVG's stroke drawings.

KanjiVG (PyPI `kanjivg`) draws each character as one SVG path per stroke, in a
handwriting-like style (not a font glyph). Images are rendered with cairosvg after the
stroke-number annotations are removed (they would give the answer away).
"""

from __future__ import annotations

import io
import os
import re

import numpy as np
import tensorflow_datasets as tfds

from vtab_eval.tasks.embedded import common

SIZE = 64
# Upper stroke count of each bin: 1-6, 7-8, 9-10, 11-12, 13-14, 15-16, 17-19, 20+; chosen
# so that KanjiVG's 6,431 Han characters fill the bins roughly evenly (447 to 1,166 each).
STROKE_BIN_TOPS = (6, 8, 10, 12, 14, 16, 19)
NUM_BINS = len(STROKE_BIN_TOPS) + 1

_MAIN_FILE = re.compile(r"([0-9a-f]{5})\.svg")  # Variants have a suffix: 04e14-Kaisho.svg
_STROKE = re.compile(r'<path\s[^>]*id="kvg:[0-9a-f]+-s\d+"')
_STROKE_NUMBERS = re.compile(r'<g id="kvg:StrokeNumbers_[^"]*".*?</g>', re.DOTALL)


def is_han(codepoint: int) -> bool:
    return (
        0x4E00 <= codepoint <= 0x9FFF
        or 0x3400 <= codepoint <= 0x4DBF
        or 0xF900 <= codepoint <= 0xFAFF
        or 0x20000 <= codepoint <= 0x2FFFF
    )


def stroke_bin(strokes: int) -> int:
    for label, top in enumerate(STROKE_BIN_TOPS):
        if strokes <= top:
            return label
    return NUM_BINS - 1


def kanjivg_dir() -> str:
    """KanjiVG's SVGs: the wheel installs them as a top-level `kanji/` data folder."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("kanjivg")
    except importlib.metadata.PackageNotFoundError as e:
        raise common.MissingSourceError("KanjiVG is missing: pip install kanjivg") from e
    return str(dist.locate_file("kanji"))


def kanji_files(root: str) -> list[str]:
    """Main (non-variant) SVG file names of Han characters, sorted."""
    return sorted(
        name
        for name in os.listdir(root)
        if (m := _MAIN_FILE.fullmatch(name)) and is_han(int(m.group(1), 16))
    )


def render(svg: str) -> np.ndarray:
    cairosvg = common.require_module("cairosvg", "cairosvg")
    from PIL import Image

    png = cairosvg.svg2png(
        bytestring=_STROKE_NUMBERS.sub("", svg).encode(),
        output_width=SIZE,
        output_height=SIZE,
        background_color="white",
    )
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8)[..., None]


class MiniVtabKanji(common.EmbeddedBuilder):
    """Kanji stroke-count bins (8 classes) from KanjiVG renders, split 800 / 200 / rest."""

    DESCRIPTION = __doc__
    FULL_SIZES = common.SplitSizes(train=800, validation=200, test=None)

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(SIZE, SIZE, 1)),
            "label": tfds.features.ClassLabel(num_classes=NUM_BINS),
            "strokes": tfds.features.Scalar(dtype=np.int32),
            "character": tfds.features.Text(),
        }

    def _source_examples(self, sizes):
        root = kanjivg_dir()
        if not os.path.isdir(root):
            raise common.MissingSourceError(f"{root} is missing: pip install kanjivg")

        def examples():
            for name in common.stable_order(kanji_files(root), salt="kanji"):
                with open(os.path.join(root, name), encoding="utf-8") as f:
                    svg = f.read()
                strokes = len(_STROKE.findall(svg))
                yield {
                    "image": render(svg),
                    "label": stroke_bin(strokes),
                    "strokes": strokes,
                    "character": chr(int(name[:5], 16)),
                }

        return common.shared(examples())

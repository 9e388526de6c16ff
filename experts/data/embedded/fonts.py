"""Font faces and the renderers that turn a character or an emoji into a small RGB image.

Coverage comes from each face's cmap (fontTools), never from Pillow: Pillow silently draws
the ``.notdef`` box ("tofu") for a missing character. Rendering is done at twice the target
size and box-filtered down, which anti-aliases thin strokes better than drawing at 32 px.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
from collections.abc import Iterable, Sequence

import numpy as np
from fontTools.ttLib import TTCollection, TTFont
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = ("/usr/share/fonts",)
NOTO_EMOJI_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
EMOJIONE_DIR = "/usr/share/rubygems-integration/all/gems/gemojione-3.3.0/assets/png"
# Noto Color Emoji is a bitmap font with one strike: FreeType loads it only at this size.
NOTO_EMOJI_SIZE = 109
_FONT_EXTENSIONS = (".ttf", ".otf", ".ttc")
_SUPERSAMPLE = 2


@dataclasses.dataclass(frozen=True)
class Face:
    """One face of a font file (a .ttc holds several)."""

    path: str
    index: int
    family: str
    style: str
    coverage: frozenset[int] = dataclasses.field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return f"{self.family} {self.style}"


def _name(font: TTFont, *ids: int) -> str:
    for name_id in ids:
        value = font["name"].getDebugName(name_id)
        if value:
            return value
    return "?"


def _face(path: str, index: int, font: TTFont) -> Face | None:
    # Colour bitmap fonts (emoji) are handled by their own renderer.
    if "CBDT" in font or "sbix" in font or "cmap" not in font:
        return None
    cmap = font.getBestCmap() or {}
    return Face(path, index, _name(font, 16, 1), _name(font, 17, 2), frozenset(cmap))


@functools.lru_cache(maxsize=512)
def load_faces(path: str) -> tuple[Face, ...]:
    """The text faces of one font file with their character coverage (cached per process:
    reading the CJK collections' cmaps takes seconds)."""
    if path.lower().endswith(".ttc"):
        collection = TTCollection(path, lazy=True)
        faces = [_face(path, i, font) for i, font in enumerate(collection.fonts)]
    else:
        faces = [_face(path, 0, TTFont(path, lazy=True))]
    return tuple(f for f in faces if f is not None)


def find_font_files(font_dirs: Sequence[str], patterns: Sequence[str] = ("*",)) -> list[str]:
    """Font files under ``font_dirs`` whose base name matches one of ``patterns``, sorted."""
    files = set()
    for font_dir in font_dirs:
        for pattern in patterns:
            for path in glob.glob(os.path.join(font_dir, "**", pattern), recursive=True):
                if path.lower().endswith(_FONT_EXTENSIONS):
                    files.add(path)
    return sorted(files)


def discover_faces(font_files: Iterable[str]) -> list[Face]:
    faces = []
    for path in font_files:
        faces.extend(load_faces(path))
    return faces


def text_faces(font_dirs: Sequence[str], patterns: Sequence[str], skip) -> list[Face]:
    """The faces of the matching font files, except those whose file or family name the
    ``skip`` regex finds (faces that are not text designs of their characters)."""
    files = [
        f for f in find_font_files(font_dirs, patterns) if not skip.search(os.path.basename(f))
    ]
    faces = [f for f in discover_faces(files) if not skip.search(f.family)]
    if not faces:
        raise FileNotFoundError(
            f"no font faces match {patterns} under {font_dirs}; install "
            "fonts-noto-core, fonts-noto-cjk, fonts-dejavu-core and fonts-freefont-ttf"
        )
    return faces


@functools.lru_cache(maxsize=64)
def _truetype(path: str, index: int, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size=size, index=index)


def _fit_on_canvas(
    ink: Image.Image, size: int, scale: float, offset: tuple[float, float], background
) -> Image.Image:
    """Scales an RGBA image so its larger side is ``scale * size`` and pastes it, shifted by
    ``offset`` (fractions of the free margin, in [-1, 1]), on a ``size`` x ``size`` canvas."""
    side = max(1, round(scale * size))
    w, h = ink.size
    factor = side / max(w, h)
    w, h = max(1, round(w * factor)), max(1, round(h * factor))
    ink = ink.resize((w, h), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (size, size), tuple(background) + (255,))
    x = round((size - w) / 2 * (1 + offset[0]))
    y = round((size - h) / 2 * (1 + offset[1]))
    canvas.alpha_composite(ink, (x, y))
    return canvas.convert("RGB")


def render_glyph(
    face: Face,
    char: str,
    size: int,
    ink=(0, 0, 0),
    background=(255, 255, 255),
    scale: float = 0.8,
) -> np.ndarray | None:
    """Renders one character as a ``[size, size, 3]`` uint8 image, or None if it draws
    nothing (blank or zero-width glyphs).

    The em box, not the ink, is scaled to ``scale * size``, so the relative size and
    vertical position of glyphs survive ("," and "'" stay different); glyphs that would
    overflow the canvas are shrunk to fit."""
    big = size * _SUPERSAMPLE
    font = _truetype(face.path, face.index, max(4, round(scale * big)))
    canvas = Image.new("L", (big * 2, big * 2), 0)
    # Anchor "mm": horizontal middle, vertical middle of ascender/descender.
    ImageDraw.Draw(canvas).text((big, big), char, font=font, fill=255, anchor="mm")
    box = canvas.getbbox()
    if box is None:
        return None
    left, top, right, bottom = box
    # Keep the em-box placement when it fits, otherwise shrink around the ink.
    half = max(big - left, right - big, big - top, bottom - big, big // 2)
    if half > big // 2:
        crop = canvas.crop((big - half, big - half, big + half, big + half))
        crop = crop.resize((big, big), Image.Resampling.LANCZOS)
    else:
        crop = canvas.crop((big // 2, big // 2, big // 2 + big, big // 2 + big))
    mask = crop.resize((size, size), Image.Resampling.BOX)
    image = Image.new("RGB", (size, size), tuple(background))
    image.paste(Image.new("RGB", (size, size), tuple(ink)), (0, 0), mask)
    return np.asarray(image)


@functools.lru_cache(maxsize=1)
def _noto_emoji(path: str) -> tuple[ImageFont.FreeTypeFont, frozenset[int]]:
    font = ImageFont.truetype(path, size=NOTO_EMOJI_SIZE, layout_engine=ImageFont.Layout.RAQM)
    return font, frozenset(TTFont(path, lazy=True).getBestCmap())


def noto_emoji_image(text: str, path: str = NOTO_EMOJI_FONT) -> Image.Image | None:
    """The Noto Color Emoji bitmap of an emoji sequence as RGBA, or None when the font does
    not cover it: a missing code point, or a sequence that shapes to several glyphs (for
    example a ZWJ sequence the font has no ligature for)."""
    font, cmap = _noto_emoji(path)
    if not all(ord(c) in cmap for c in text if ord(c) not in (0x200D, 0xFE0F)):
        return None
    left, top, right, bottom = font.getbbox(text)
    # One glyph is about 1.2 em wide in this font; two glyphs are twice that.
    if right - left > 1.6 * NOTO_EMOJI_SIZE:
        return None
    image = Image.new("RGBA", (right - left + 8, bottom - top + 8), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((4 - left, 4 - top), text, font=font, embedded_color=True)
    box = image.getbbox()
    return image.crop(box) if box else None


def emojione_image(key: str, directory: str = EMOJIONE_DIR) -> Image.Image | None:
    """The EmojiOne PNG for a ``1F600``-style key (code points without ZWJ/VS16), or None."""
    path = os.path.join(directory, f"{key}.png")
    if not os.path.exists(path):
        return None
    with Image.open(path) as image:
        image = image.convert("RGBA")
    box = image.getbbox()
    return image.crop(box) if box else None


def place_emoji(
    image: Image.Image,
    size: int,
    scale: float = 0.9,
    offset: tuple[float, float] = (0.0, 0.0),
    background=(255, 255, 255),
) -> np.ndarray:
    """An RGBA emoji bitmap composited on a ``size`` x ``size`` RGB canvas."""
    return np.asarray(_fit_on_canvas(image, size, scale, offset, background))

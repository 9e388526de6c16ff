"""Natural group, matched to the embedded upstream: classes the upstream never saw.

The embedded upstream (experts/data/embedded/plan.py) draws characters and emoji; these
two tasks draw the same kinds of things, from the classes its rules leave out, so no
image of a task class is in the upstream or its probes:

* ``MiniVtabEmoji``: which emoji group (smileys, animals, food, ...) an emoji belongs
  to. The upstream takes emoji that both styles draw, without skin-tone variants; the
  task takes the skin-tone variants (both styles) and the emoji only Noto draws (newer
  than EmojiOne 3.3). All tones of one emoji fall in one split, so a test emoji is
  never a recoloured training one.
* ``MiniVtabHanRadical``: the Kangxi radical of a Han character. The upstream takes the
  common characters (Unihan kFrequency 1 to ``UPSTREAM_HAN_MAX_FREQUENCY``); the task
  the rarer ones, in the Noto CJK faces, each character in one split only.

vtab_eval never imports experts/: the few table readers and renderers are repeated
here, and a test checks both rules against the upstream's own.
"""

from __future__ import annotations

import bz2
import collections
import functools
import hashlib
import os
import re

import numpy as np
import tensorflow_datasets as tfds

from vtab_eval.tasks.embedded import common

UNICODE_DIR = "/usr/share/unicode"
NOTO_EMOJI_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
EMOJIONE_DIR = "/usr/share/rubygems-integration/all/gems/gemojione-3.3.0/assets/png"
NOTO_CJK_FILES = tuple(
    f"/usr/share/fonts/opentype/noto/Noto{kind}CJK-{weight}.ttc"
    for kind in ("Sans", "Serif")
    for weight in ("Regular", "Bold")
)
SIZE = 32  # the embedded upstream's cpu size, so content hashes compare like with like
# The upstream's rule (EmbeddedSpec.han_max_frequency); a test keeps the two equal.
UPSTREAM_HAN_MAX_FREQUENCY = 3
SKIN_TONES = frozenset(range(0x1F3FB, 0x1F400))
ZWJ, VS16 = 0x200D, 0xFE0F
# Emoji groups kept as classes: Flags has a handful of Noto-only emoji, too few to split.
EMOJI_GROUPS = (
    "Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink",
    "Travel & Places", "Activities", "Objects", "Symbols",
)  # fmt: skip
# The 20 Kangxi radicals with the most rare characters that every Noto CJK face draws
# (185 to 1,039 each).
HAN_RADICALS = (
    9, 30, 32, 38, 46, 61, 64, 75, 85, 86, 96, 118, 120, 130, 140, 142, 149, 167, 195, 196,
)  # fmt: skip
NOTO_EMOJI_SIZE = 109  # the one bitmap strike FreeType loads


def _hash01(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64


def split_of(key: str, validation: float = 0.15, test: float = 0.40) -> str:
    """A class member's split, by a hash of its key: all images of a key in one split."""
    u = _hash01("split/" + key)
    return "test" if u < test else "validation" if u < test + validation else "train"


# --- emoji ---------------------------------------------------------------------------

_EMOJI_LINE = re.compile(r"^([0-9A-F ]+);\s*([a-z-]+)\s*#")


def read_emoji_groups(path: str) -> list[tuple[tuple[int, ...], str]]:
    """(code points, group) of every fully-qualified emoji in emoji-test.txt."""
    out, group = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("# group:"):
                group = line.split(":", 1)[1].strip()
            elif line and not line.startswith("#"):
                match = _EMOJI_LINE.match(line)
                if match and match.group(2) == "fully-qualified" and group is not None:
                    out.append((tuple(int(c, 16) for c in match.group(1).split()), group))
    return out


def emoji_key(codepoints) -> str:
    """How EmojiOne names its files: code points without ZWJ and VS16."""
    return "-".join(f"{cp:04X}" for cp in codepoints if cp not in (ZWJ, VS16))


@functools.lru_cache(maxsize=1)
def _noto_font(path: str):
    from fontTools.ttLib import TTFont
    from PIL import ImageFont

    font = ImageFont.truetype(path, size=NOTO_EMOJI_SIZE, layout_engine=ImageFont.Layout.RAQM)
    return font, frozenset(TTFont(path, lazy=True).getBestCmap())


def noto_draws(text: str, path: str = NOTO_EMOJI_FONT) -> bool:
    """Whether Noto draws an emoji sequence as one glyph: every code point in its cmap and
    a ligature for the whole (several glyphs are twice as wide)."""
    font, cmap = _noto_font(path)
    if not all(ord(c) in cmap for c in text if ord(c) not in (ZWJ, VS16)):
        return False
    left, _, right, _ = font.getbbox(text)
    return right - left <= 1.6 * NOTO_EMOJI_SIZE


def noto_emoji(text: str, path: str = NOTO_EMOJI_FONT):
    """The Noto bitmap of an emoji sequence that ``noto_draws``, as RGBA."""
    from PIL import Image, ImageDraw

    font, _ = _noto_font(path)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("RGBA", (right - left + 8, bottom - top + 8), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((4 - left, 4 - top), text, font=font, embedded_color=True)
    return image.crop(image.getbbox())


def emojione(key: str, directory: str = EMOJIONE_DIR):
    from PIL import Image

    path = os.path.join(directory, f"{key}.png")
    if not os.path.exists(path):
        return None
    with Image.open(path) as image:
        image = image.convert("RGBA")
    box = image.getbbox()
    return image.crop(box) if box else None


@functools.lru_cache(maxsize=1)
def emoji_pool(unicode_dir: str = UNICODE_DIR) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Group -> [(emoji key, its styles)] of the emoji the upstream leaves out: skin-tone
    variants that both styles draw, and emoji only Noto draws."""
    pool = collections.defaultdict(list)
    for codepoints, group in read_emoji_groups(os.path.join(unicode_dir, "emoji/emoji-test.txt")):
        if group not in EMOJI_GROUPS:
            continue
        key = emoji_key(codepoints)
        noto = noto_draws("".join(map(chr, codepoints)))
        one = os.path.exists(os.path.join(EMOJIONE_DIR, f"{key}.png"))
        if SKIN_TONES.intersection(codepoints) and noto and one:
            pool[group].append((key, ("noto", "emojione")))
        elif not SKIN_TONES.intersection(codepoints) and noto and not one:
            pool[group].append((key, ("noto",)))
    return dict(pool)


def base_key(key: str) -> str:
    """An emoji's key without its skin tones: what keeps all tones in one split."""
    return "-".join(p for p in key.split("-") if int(p, 16) not in SKIN_TONES)


def place(bitmap, rng: np.random.Generator) -> np.ndarray:
    """An RGBA bitmap on a SIZE x SIZE canvas: random scale, offset and background, as
    the upstream lays out its emoji."""
    from PIL import Image

    background = tuple(int(v) for v in rng.integers(215, 256, size=3)) + (255,)
    side = max(1, round(rng.uniform(0.6, 0.95) * SIZE))
    factor = side / max(bitmap.size)
    w, h = (max(1, round(v * factor)) for v in bitmap.size)
    ink = bitmap.resize((w, h), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (SIZE, SIZE), background)
    dx, dy = rng.uniform(-0.8, 0.8, size=2)
    canvas.alpha_composite(
        ink, (round((SIZE - w) / 2 * (1 + dx)), round((SIZE - h) / 2 * (1 + dy)))
    )
    return np.asarray(canvas.convert("RGB"))


def _draws(members: dict[str, list], seed: str, draw):
    """Endless examples: a class uniformly, then one of its members, drawn by ``draw``."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))
    labels = sorted(members)
    while True:
        label = labels[int(rng.integers(len(labels)))]
        member = members[label][int(rng.integers(len(members[label])))]
        yield {"image": draw(member, rng), "label": label}


class MiniVtabEmoji(common.EmbeddedBuilder):
    """Emoji the upstream never saw (skin-tone variants in both styles, emoji only Noto
    draws), labelled by their emoji group; classes drawn uniformly."""

    DESCRIPTION = __doc__
    FULL_SIZES = common.SplitSizes(train=800, validation=200, test=1500)

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(SIZE, SIZE, 3)),
            "label": tfds.features.ClassLabel(names=[_slug(g) for g in EMOJI_GROUPS]),
        }

    def _source_examples(self, sizes):
        common.require_path(NOTO_EMOJI_FONT, "fonts-noto-color-emoji")
        common.require_path(EMOJIONE_DIR, "ruby-gemojione")
        common.require_path(os.path.join(UNICODE_DIR, "emoji/emoji-test.txt"), "unicode-data")
        members = {s: collections.defaultdict(list) for s in common.SPLIT_ORDER}
        for group, emoji in emoji_pool().items():
            for key, styles in emoji:
                for style in styles:
                    members[split_of(base_key(key))][EMOJI_GROUPS.index(group)].append((key, style))

        def draw(member, rng):
            key, style = member
            bitmap = noto_emoji(_qualified_texts()[key]) if style == "noto" else emojione(key)
            return place(bitmap, rng)

        return {s: _draws(members[s], f"emoji/{s}", draw) for s in common.SPLIT_ORDER}


@functools.lru_cache(maxsize=1)
def _qualified_texts() -> dict[str, str]:
    """Emoji key -> its fully-qualified text (with ZWJ and VS16), which Noto shapes."""
    path = os.path.join(UNICODE_DIR, "emoji/emoji-test.txt")
    return {emoji_key(cps): "".join(map(chr, cps)) for cps, _ in read_emoji_groups(path)}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --- Han characters ------------------------------------------------------------------


def read_unihan(path: str, field: str) -> dict[int, str]:
    with bz2.open(path, "rt", encoding="utf-8") as f:
        rows = (line.rstrip("\n").split("\t") for line in f if line.startswith("U+"))
        return {int(cp[2:], 16): value for cp, name, value in rows if name == field}


def radical_of(rs_unicode: str) -> int:
    """The Kangxi radical of a kRSUnicode value ("85.3", "90'.4", first of several)."""
    return int(rs_unicode.split()[0].split(".")[0].rstrip("'\""))


@functools.lru_cache(maxsize=1)
def han_pool(unicode_dir: str = UNICODE_DIR) -> dict[int, list[int]]:
    """Radical -> the rare CJK Unified Ideographs with it (kFrequency above the
    upstream's cut or none) that every Noto CJK face draws, sorted."""
    from fontTools.ttLib import TTCollection

    frequency = read_unihan(
        os.path.join(unicode_dir, "Unihan_DictionaryLikeData.txt.bz2"), "kFrequency"
    )
    rs = read_unihan(os.path.join(unicode_dir, "Unihan_IRGSources.txt.bz2"), "kRSUnicode")
    covered = None
    for path in NOTO_CJK_FILES:
        cmap = set(TTCollection(path, lazy=True).fonts[0].getBestCmap())
        covered = cmap if covered is None else covered & cmap
    pool = collections.defaultdict(list)
    for cp in sorted(covered or ()):
        if 0x4E00 <= cp <= 0x9FFF and cp in rs:
            if int(frequency.get(cp, "99")) > UPSTREAM_HAN_MAX_FREQUENCY:
                pool[radical_of(rs[cp])].append(cp)
    return dict(pool)


@functools.lru_cache(maxsize=64)
def _cjk_font(path: str, index: int, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size=size, index=index)


def render_han(cp: int, face: tuple[str, int], rng: np.random.Generator) -> np.ndarray:
    """A character in a face at SIZE px, random ink, background and scale, drawn at
    twice the size and box-filtered down, as the upstream draws its glyphs."""
    from PIL import Image, ImageDraw

    big = 2 * SIZE
    font = _cjk_font(face[0], face[1], round(rng.uniform(0.7, 0.9) * big))
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).text((big / 2, big / 2), chr(cp), font=font, fill=255, anchor="mm")
    mask = mask.resize((SIZE, SIZE), Image.Resampling.BOX)
    background = tuple(int(v) for v in rng.integers(215, 256, size=3))
    image = Image.new("RGB", (SIZE, SIZE), background)
    ink = tuple(int(v) for v in rng.integers(0, 90, size=3))
    image.paste(Image.new("RGB", (SIZE, SIZE), ink), (0, 0), mask)
    return np.asarray(image)


class MiniVtabHanRadical(common.EmbeddedBuilder):
    """Rare Han characters (none in the upstream) in the Noto CJK faces, labelled by
    their Kangxi radical (20 radicals, drawn uniformly); a character is in one split."""

    DESCRIPTION = __doc__
    FULL_SIZES = common.SplitSizes(train=800, validation=200, test=1500)

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(SIZE, SIZE, 3)),
            "label": tfds.features.ClassLabel(names=[f"radical-{r:03d}" for r in HAN_RADICALS]),
        }

    def _source_examples(self, sizes):
        for path in NOTO_CJK_FILES:
            common.require_path(path, "fonts-noto-cjk")
        pool = han_pool()
        faces = [(path, index) for path in NOTO_CJK_FILES for index in range(4)]
        members = {s: collections.defaultdict(list) for s in common.SPLIT_ORDER}
        for label, radical in enumerate(HAN_RADICALS):
            for cp in pool.get(radical, ()):
                members[split_of(f"U+{cp:04X}")][label].append(cp)

        def draw(cp, rng):
            return render_han(cp, faces[int(rng.integers(len(faces)))], rng)

        return {s: _draws(members[s], f"han/{s}", draw) for s in common.SPLIT_ORDER}

"""The embedded default upstream: glyphs and emoji with a Unicode "is-a" hierarchy.

Everything comes from Debian packages (DESIGN.md): characters rendered in many font faces
(``fonts-noto-core``, ``fonts-noto-cjk``, ``fonts-dejavu-*``, ``fonts-freefont-ttf``) and
emoji in two styles (``fonts-noto-color-emoji``, ``ruby-gemojione``), labelled with
``unicode-data``'s tables. The hierarchy (roots ``glyph`` and ``emoji``)::

    glyph -> script/<script> -> <script>/<block> -> char/U+XXXX
    glyph -> category/{letter,number,symbol,punctuation} -> category/<subcategory> -> char
    script/han -> han/radical-NNN -> char            (Han characters: Kangxi radical)
    emoji -> emoji/<group> -> emoji/<group>/<subgroup> -> emoji/U+XXXX[-YYYY...]

so a character has three or four parents, as WordNet synsets can. This module only plans:
which classes, which images (face or style, layout variant, split), and the hierarchy;
``render`` draws one planned image. The tfds builder lives in ``builders/``.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import re
from collections.abc import Sequence

import numpy as np

from experts.data.embedded import fonts
from experts.data.embedded import unicode_tables as ut
from experts.data.hierarchy import Hierarchy

GLYPH_ROOT, EMOJI_ROOT = "glyph", "emoji"
# The nodes the embedded downstream suite's matched tasks name (vtab_eval/tasks/embedded;
# a test keeps the two in step): each gets an expert, as the roots do (the paper keeps
# roots such as "entity" among its experts).
MATCHED_NODES = ("emoji", "script/han", "category/digit")
# General category -> (category node, its parent category node).
_CATEGORIES = {
    "Lu": ("uppercase-letter", "letter"),
    "Ll": ("lowercase-letter", "letter"),
    "Lt": ("titlecase-letter", "letter"),
    "Lm": ("modifier-letter", "letter"),
    "Lo": ("other-letter", "letter"),
    "Nd": ("digit", "number"),
    "Nl": ("letter-number", "number"),
    "No": ("other-number", "number"),
    "Sm": ("math-symbol", "symbol"),
    "Sc": ("currency-symbol", "symbol"),
    "Sk": ("modifier-symbol", "symbol"),
    "So": ("other-symbol", "symbol"),
}
# Punctuation is one node: its subcategories (open/close/dash...) are not visual concepts.
_PUNCTUATION = ("Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po")
# Faces whose glyphs are not text designs of their characters.
_SKIP_FAMILIES = re.compile(r"Math|Music|Symbols2|Tangut|Nushu|Emoji", re.I)


@dataclasses.dataclass(frozen=True)
class EmbeddedSpec:
    """What to put in the embedded upstream. Defaults give the ``cpu`` preset's data."""

    unicode_dir: str = ut.UNICODE_DIR
    font_dirs: tuple[str, ...] = fonts.FONT_DIRS
    # Base-name globs of font files to use (tests pick a few faces). The default takes the
    # families of the Debian packages named above only, so that unrelated fonts on a
    # machine do not change the data (fonts-noto-extra, if installed, would).
    font_patterns: tuple[str, ...] = ("Noto*", "DejaVu*", "Free*")
    noto_emoji_font: str = fonts.NOTO_EMOJI_FONT
    emojione_dir: str = fonts.EMOJIONE_DIR
    min_faces: int = 4  # a character needs this many faces to become a class
    max_faces: int = 6  # images per character, one per face
    max_chars_per_block: int = 64  # evenly spaced pick in bigger blocks
    han_max_frequency: int = 3  # Unihan kFrequency 1 (most common) .. 5
    # None: every script; otherwise only these (Scripts.txt names, e.g. "Latin").
    scripts: tuple[str, ...] | None = None
    emoji_variants: int = 5  # layouts per emoji and style (two styles)
    # None: every group; otherwise only these (emoji-test.txt names, e.g. "Flags").
    emoji_groups: tuple[str, ...] | None = None
    max_emoji_per_subgroup: int | None = None
    validation_percent: int = 10
    # Classes held out of the upstream, by a hash of their name, for the specialisation
    # probes (experts/data/embedded/probes.py): no upstream job ever sees their images. Emoji
    # nodes have ten times fewer classes than glyph nodes, so a larger share of them.
    probe_glyph_percent: int = 10
    probe_emoji_percent: int = 20


@dataclasses.dataclass(frozen=True)
class Item:
    """One image to render: a class, how to draw it, and its split."""

    key: str  # unique, stable example key
    label: int  # index into Plan.labels
    text: str  # the character or emoji sequence
    style: str  # face name, "noto" or "emojione"
    face: int  # index into Plan.faces for glyphs, -1 for emoji
    split: str  # "train" or "validation"


@dataclasses.dataclass
class Plan:
    """The upstream (``labels``, ``items``, ``hierarchy``) and, apart from it, the
    held-out probe classes (``probe_labels``, ``probe_items`` with labels indexing
    ``probe_labels``); ``full_hierarchy`` holds both, so a probe class's ancestors
    are known though the upstream's hierarchy never names it."""

    labels: list[str]
    descriptions: dict[str, str]  # node -> human-readable text
    hierarchy: Hierarchy
    faces: list[fonts.Face]
    items: list[Item]
    probe_labels: list[str] = dataclasses.field(default_factory=list)
    probe_items: list[Item] = dataclasses.field(default_factory=list)
    full_hierarchy: Hierarchy | None = None

    def label_counts(self, split: str = "train") -> dict[str, int]:
        counts = collections.Counter(
            self.labels[it.label] for it in self.items if it.split == split
        )
        return {lab: counts.get(lab, 0) for lab in self.labels}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _hash01(key: str) -> float:
    """A stable pseudo-random number in [0, 1) from a string (Python's hash is salted)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64


def _rng(key: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def _family_design(face: fonts.Face) -> str:
    # Region variants of one CJK design ("Noto Sans CJK JP/KR/SC/...") look alike.
    return re.sub(r"\b(JP|KR|SC|TC|HK)\b", "", face.family).strip()


def diverse_faces(faces: Sequence[int], all_faces: Sequence[fonts.Face], k: int) -> list[int]:
    """Up to ``k`` of ``faces``, spread over designs first, then styles, then regions: a
    round robin over designs, each design's faces in style-alternating order."""
    by_design: dict[str, list[int]] = collections.defaultdict(list)
    for i in sorted(faces, key=lambda i: (all_faces[i].family, all_faces[i].style)):
        by_design[_family_design(all_faces[i])].append(i)
    queues = []
    for design in sorted(by_design):
        by_style: dict[str, list[int]] = collections.defaultdict(list)
        for i in by_design[design]:
            by_style[all_faces[i].style].append(i)
        queues.append(_round_robin([by_style[s] for s in sorted(by_style)]))
    return _round_robin(queues)[:k]


def _round_robin(lists: Sequence[Sequence[int]]) -> list[int]:
    out = []
    for row in range(max((len(x) for x in lists), default=0)):
        out.extend(x[row] for x in lists if row < len(x))
    return out


def _evenly_spaced(values: Sequence[int], k: int) -> list[int]:
    if len(values) <= k:
        return list(values)
    return [values[(i * len(values)) // k] for i in range(k)]


def _split(items: list[Item], percent: int) -> list[Item]:
    """Deterministic split: an image goes to validation with probability ``percent``%, by a
    hash of its key, except the last image of each class by that hash, which stays in train
    so that every class can be learned."""
    by_label: dict[int, list[Item]] = collections.defaultdict(list)
    for it in items:
        by_label[it.label].append(it)
    keep = {max(group, key=lambda it: _hash01(it.key)).key for group in by_label.values()}
    return [
        dataclasses.replace(
            it,
            split="validation"
            if it.key not in keep and _hash01("split/" + it.key) < percent / 100
            else "train",
        )
        for it in items
    ]


class _Builder:
    """Accumulates nodes (in a readable order) and labels."""

    def __init__(self):
        self.parents: dict[str, list[str]] = {}
        self.descriptions: dict[str, str] = {}

    def node(self, name: str, parents: Sequence[str], description: str) -> str:
        if name not in self.parents:
            self.parents[name] = list(parents)
            self.descriptions[name] = description
        return name


def _select_chars(
    spec: EmbeddedSpec, faces: list[fonts.Face], chars, scripts, blocks
) -> dict[int, list[int]]:
    """Character -> the faces (indices) that cover it, for the characters that qualify."""
    frequency = {
        cp: int(v)
        for cp, v in ut.read_unihan_field(
            ut.unicode_path(spec.unicode_dir, "Unihan_DictionaryLikeData.txt.bz2"), "kFrequency"
        ).items()
    }
    covering: dict[int, list[int]] = collections.defaultdict(list)
    for i, face in enumerate(faces):
        for cp in face.coverage:
            covering[cp].append(i)
    by_block: dict[tuple[str, bool], list[int]] = collections.defaultdict(list)
    for cp in sorted(covering):
        info = chars.get(cp)
        script = scripts.get(cp, "Unknown")
        if (
            info is None
            or len(covering[cp]) < spec.min_faces
            or info.duplicates_another
            or not (info.category in _CATEGORIES or info.category in _PUNCTUATION)
            or script in ("Unknown", "Inherited")
            or (spec.scripts is not None and script not in spec.scripts)
        ):
            continue
        if script == "Han" and frequency.get(cp, 99) > spec.han_max_frequency:
            continue  # the common characters only; rarer ones are a sea of near-duplicates
        by_block[(blocks.get(cp, "No_Block"), script == "Han")].append(cp)
    selected = {}
    for (_, is_han), cps in by_block.items():
        # Han characters are already filtered by frequency; keep all of them.
        for cp in _evenly_spaced(cps, len(cps) if is_han else spec.max_chars_per_block):
            selected[cp] = covering[cp]
    return selected


def _inks(face: fonts.Face, cp: int) -> bool:
    """Whether the face draws anything for the character (some cmaps map to empty glyphs)."""
    font = fonts._truetype(face.path, face.index, 24)
    return font.getmask(chr(cp)).getbbox() is not None


def _plan_glyphs(spec, faces, b: _Builder, labels: list[str], items: list[Item]) -> None:
    """Adds every qualifying character as a class, with one image per inking face."""
    u = spec.unicode_dir
    chars = ut.read_unicode_data(ut.unicode_path(u, "UnicodeData.txt"))
    scripts = ut.range_lookup(ut.read_ranges(ut.unicode_path(u, "Scripts.txt")))
    blocks = ut.range_lookup(ut.read_ranges(ut.unicode_path(u, "Blocks.txt")))
    radical_chars = ut.read_cjk_radicals(ut.unicode_path(u, "CJKRadicals.txt"))
    rs = ut.read_unihan_field(ut.unicode_path(u, "Unihan_IRGSources.txt.bz2"), "kRSUnicode")
    b.node(GLYPH_ROOT, [], "characters rendered in font faces")
    for cp, covering in sorted(_select_chars(spec, faces, chars, scripts, blocks).items()):
        # Walk the faces in diversity order and keep the first ones that draw something.
        inked = []
        for i in diverse_faces(covering, faces, len(covering)):
            if _inks(faces[i], cp):
                inked.append(i)
                if len(inked) == spec.max_faces:
                    break
        if len(inked) < spec.min_faces:
            continue
        info, script, block = chars[cp], scripts[cp], blocks.get(cp, "No_Block")
        script_node = b.node(f"script/{slug(script)}", [GLYPH_ROOT], f"{script} script")
        parents = [b.node(f"{slug(script)}/{slug(block)}", [script_node], f"{script}: {block}")]
        if info.category in _PUNCTUATION:
            parents.append(b.node("category/punctuation", [GLYPH_ROOT], "punctuation"))
        else:
            sub, top = _CATEGORIES[info.category]
            top_node = b.node(f"category/{top}", [GLYPH_ROOT], top)
            parents.append(b.node(f"category/{sub}", [top_node], sub.replace("-", " ")))
        if script == "Han" and cp in rs:
            r = ut.kangxi_radical(rs[cp])
            description = f"Kangxi radical {r} {radical_chars.get(r, '')}"
            parents.append(b.node(f"han/radical-{r:03d}", [script_node], description))
        label = b.node(f"char/U+{cp:04X}", parents, f"{chr(cp)} {info.name}")
        labels.append(label)
        for i in inked:
            items.append(
                Item(f"{label}/{faces[i].name}", len(labels) - 1, chr(cp), faces[i].name, i, "")
            )


def _plan_emoji(spec, b: _Builder, labels: list[str], items: list[Item]) -> None:
    """Adds every emoji both styles draw as a class, ``emoji_variants`` layouts each."""
    emoji = ut.read_emoji_test(ut.unicode_path(spec.unicode_dir, "emoji/emoji-test.txt"))
    b.node(EMOJI_ROOT, [], "emoji in two styles")
    per_subgroup: collections.Counter = collections.Counter()
    for e in emoji:
        if spec.emoji_groups is not None and e.group not in spec.emoji_groups:
            continue
        if spec.max_emoji_per_subgroup is not None:
            if per_subgroup[e.subgroup] >= spec.max_emoji_per_subgroup:
                continue
        if fonts.emojione_image(e.key, spec.emojione_dir) is None:
            continue
        if fonts.noto_emoji_image(e.text, spec.noto_emoji_font) is None:
            continue
        per_subgroup[e.subgroup] += 1
        group = b.node(f"emoji/{slug(e.group)}", [EMOJI_ROOT], e.group)
        sub = b.node(f"emoji/{slug(e.group)}/{slug(e.subgroup)}", [group], e.subgroup)
        label = b.node(f"emoji/U+{e.key}", [sub], f"{e.text} {e.name}")
        labels.append(label)
        for style in ("noto", "emojione"):
            for v in range(spec.emoji_variants):
                items.append(Item(f"{label}/{style}/{v}", len(labels) - 1, e.text, style, -1, ""))


def is_probe_class(label: str, spec: EmbeddedSpec) -> bool:
    """Whether a class is held out of the upstream for the probes (a stable hash)."""
    emoji = label.startswith("emoji/")
    percent = spec.probe_emoji_percent if emoji else spec.probe_glyph_percent
    return _hash01("probe/" + label) < percent / 100


def _reindex(items: list[Item], labels: list[str], keep: list[str]) -> list[Item]:
    """The items of the classes ``keep``, their labels renumbered to index ``keep``."""
    index = {lab: i for i, lab in enumerate(keep)}
    return [
        dataclasses.replace(it, label=index[labels[it.label]])
        for it in items
        if labels[it.label] in index
    ]


def make_plan(spec: EmbeddedSpec) -> Plan:
    """Lists every class, image and node of the embedded upstream and of its held-out
    probe classes (no rendering yet)."""
    faces = fonts.text_faces(spec.font_dirs, spec.font_patterns, _SKIP_FAMILIES)
    b = _Builder()
    labels: list[str] = []
    items: list[Item] = []
    _plan_glyphs(spec, faces, b, labels, items)
    _plan_emoji(spec, b, labels, items)
    if not labels:
        raise ValueError(f"the embedded spec selects no classes: {spec}")
    held_out = {lab for lab in labels if is_probe_class(lab, spec)}
    probe_labels = [lab for lab in labels if lab in held_out]
    kept = [lab for lab in labels if lab not in held_out]
    if not kept:
        raise ValueError(f"the embedded spec holds every class out for probes: {spec}")
    full = Hierarchy(_used_nodes(b.parents, labels), source="embedded upstream and probes")
    parents = _used_nodes(b.parents, kept)
    hierarchy = Hierarchy(parents, source="embedded upstream")
    return Plan(
        labels=kept,
        descriptions={n: b.descriptions[n] for n in full.nodes},
        hierarchy=hierarchy,
        faces=faces,
        items=_split(_reindex(items, labels, kept), spec.validation_percent),
        probe_labels=probe_labels,
        probe_items=[
            dataclasses.replace(it, split="probe") for it in _reindex(items, labels, probe_labels)
        ],
        full_hierarchy=full,
    )


def _used_nodes(parents: dict[str, list[str]], labels: Sequence[str]) -> dict[str, list[str]]:
    """The part of the graph that leads up from ``labels``: a block, root or radical
    whose every class is held out has no place in the upstream's hierarchy."""
    used, stack = set(), list(labels)
    while stack:
        node = stack.pop()
        if node not in used:
            used.add(node)
            stack.extend(parents[node])
    return {n: ps for n, ps in parents.items() if n in used}


def render(
    item: Item, plan_faces: Sequence[fonts.Face], size: int, spec: EmbeddedSpec
) -> np.ndarray:
    """Draws one planned image as ``[size, size, 3]`` uint8. Colours, scale and position
    are drawn from a generator seeded by the item's key, so a rebuild is identical."""
    rng = _rng(item.key)
    background = tuple(int(v) for v in rng.integers(215, 256, size=3))
    if item.face >= 0:
        ink = tuple(int(v) for v in rng.integers(0, 90, size=3))
        image = fonts.render_glyph(
            plan_faces[item.face], item.text, size, ink, background, scale=rng.uniform(0.7, 0.9)
        )
        if image is None:
            raise ValueError(f"{item.key}: the face draws nothing for this character")
        return image
    if item.style == "noto":
        bitmap = fonts.noto_emoji_image(item.text, spec.noto_emoji_font)
    else:
        bitmap = fonts.emojione_image(item.key.split("/")[1][2:], spec.emojione_dir)
    if bitmap is None:
        raise ValueError(f"{item.key}: no {item.style} image for this emoji")
    offset = tuple(rng.uniform(-0.8, 0.8, size=2))
    return fonts.place_emoji(bitmap, size, rng.uniform(0.6, 0.95), offset, background)

"""Readers for the Unicode Character Database files that Debian's ``unicode-data`` installs.

The embedded upstream takes its label hierarchy from these tables: a character's script and
block (Scripts.txt, Blocks.txt), its general category (UnicodeData.txt), a Han character's
Kangxi radical and frequency (Unihan), and the emoji group/subgroup tree (emoji-test.txt).
Each reader is a small pure function of one file, so tests can feed it a hand-written table.
"""

from __future__ import annotations

import bz2
import dataclasses
import os
import re
from collections.abc import Iterable

UNICODE_DIR = "/usr/share/unicode"
# Skin-tone modifiers: the paper's classes are concepts, not renderings of one person.
SKIN_TONES = frozenset(range(0x1F3FB, 0x1F400))
ZWJ, VS16 = 0x200D, 0xFE0F


def unicode_path(unicode_dir: str, name: str) -> str:
    path = os.path.join(unicode_dir, name)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} is missing; install the Debian package unicode-data (or pass its directory)"
        )
    return path


def _open_text(path: str):
    if path.endswith(".bz2"):
        return bz2.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _data_lines(path: str) -> Iterable[tuple[int, str]]:
    """(line number, content) of the lines that are not blank or comments."""
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if line:
                yield number, line


def _code_range(field: str, path: str, number: int) -> range:
    try:
        first, _, last = field.strip().partition("..")
        return range(int(first, 16), int(last or first, 16) + 1)
    except ValueError:
        raise ValueError(f"{path}:{number}: bad code point range {field!r}") from None


def read_ranges(path: str) -> list[tuple[range, str]]:
    """Reads ``XXXX..YYYY; Value`` files such as Scripts.txt and Blocks.txt."""
    out = []
    for number, line in _data_lines(path):
        field, sep, value = line.partition(";")
        if not sep:
            raise ValueError(f"{path}:{number}: expected 'range; value', got {line!r}")
        out.append((_code_range(field, path, number), value.strip()))
    return out


def range_lookup(ranges: list[tuple[range, str]]) -> dict[int, str]:
    """Code point -> value for every point in the ranges (a few hundred thousand entries)."""
    return {cp: value for r, value in ranges for cp in r}


@dataclasses.dataclass(frozen=True)
class CharInfo:
    name: str
    category: str  # general category, e.g. "Lu"
    decomposition: str  # raw field: "", "0065 0301", "<compat> 0020", ...

    @property
    def duplicates_another(self) -> bool:
        """True for compatibility characters (fullwidth, math-styled, presentation forms,
        Kangxi radicals...) and canonical singletons (Kelvin sign, CJK compatibility
        ideographs): they draw the same picture as another character, so as separate
        classes they would only add label noise."""
        d = self.decomposition
        return d.startswith("<") or (bool(d) and " " not in d)


def read_unicode_data(path: str) -> dict[int, CharInfo]:
    """Code point -> name, general category and decomposition from UnicodeData.txt,
    including the ``<..., First>``/``<..., Last>`` ranges (CJK ideographs, Hangul)."""
    chars: dict[int, CharInfo] = {}
    first = None
    for number, line in _data_lines(path):
        fields = line.split(";")
        if len(fields) < 6:
            raise ValueError(f"{path}:{number}: expected ';'-separated fields, got {line!r}")
        cp, name, category, decomposition = int(fields[0], 16), fields[1], fields[2], fields[5]
        if name.endswith(", First>"):
            first = cp
        elif name.endswith(", Last>"):
            if first is None:
                raise ValueError(f"{path}:{number}: range end {name} without a start")
            base = name[1:].split(",")[0].upper()
            for c in range(first, cp + 1):
                chars[c] = CharInfo(f"{base}-{c:04X}", category, "")
            first = None
        else:
            chars[cp] = CharInfo(name, category, decomposition)
    return chars


def read_unihan_field(path: str, field: str) -> dict[int, str]:
    """Code point -> raw value of one Unihan field (``U+4E00<TAB>kField<TAB>value``)."""
    out = {}
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            if line.startswith("U+"):
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 3:
                    raise ValueError(f"{path}:{number}: expected 3 tab-separated fields")
                if parts[1] == field:
                    out[int(parts[0][2:], 16)] = parts[2]
    return out


def kangxi_radical(rs_unicode: str) -> int:
    """The radical number of a kRSUnicode value such as ``85.5`` or ``120'.3`` (the first
    of several values; apostrophes mark simplified forms of the same radical)."""
    radical = rs_unicode.split()[0].split(".")[0].rstrip("'")
    return int(radical)


@dataclasses.dataclass(frozen=True)
class Emoji:
    codepoints: tuple[int, ...]
    group: str
    subgroup: str
    name: str

    @property
    def text(self) -> str:
        return "".join(map(chr, self.codepoints))

    @property
    def key(self) -> str:
        """Code points without ZWJ and VS16, the way image sets name their files."""
        return "-".join(f"{cp:04X}" for cp in self.codepoints if cp not in (ZWJ, VS16))


_EMOJI_LINE = re.compile(r"^([0-9A-F ]+);\s*([a-z-]+)\s*#\s*\S+\s+E\d+\.\d+\s+(.*)$")


def read_emoji_test(path: str, skip_groups: Iterable[str] = ("Component",)) -> list[Emoji]:
    """The fully-qualified emoji of emoji-test.txt in file order, without skin-tone
    variants and without the given groups (``Component`` holds bare modifiers)."""
    skip = set(skip_groups)
    group = subgroup = None
    out = []
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if line.startswith("# group:"):
                group = line.split(":", 1)[1].strip()
            elif line.startswith("# subgroup:"):
                subgroup = line.split(":", 1)[1].strip()
            elif line and not line.startswith("#"):
                match = _EMOJI_LINE.match(line)
                if not match:
                    raise ValueError(f"{path}:{number}: unrecognised emoji line {line!r}")
                if group is None or subgroup is None:
                    raise ValueError(f"{path}:{number}: emoji before any group/subgroup header")
                codepoints = tuple(int(c, 16) for c in match.group(1).split())
                if match.group(2) != "fully-qualified" or group in skip:
                    continue
                if SKIN_TONES.intersection(codepoints):
                    continue
                out.append(Emoji(codepoints, group, subgroup, match.group(3).strip()))
    return out


def read_cjk_radicals(path: str) -> dict[int, str]:
    """Kangxi radical number -> its radical character (``1 -> '⼀'``) from CJKRadicals.txt;
    the simplified forms (``90'``) are skipped."""
    out = {}
    for number, line in _data_lines(path):
        fields = [f.strip() for f in line.split(";")]
        if len(fields) != 3:
            raise ValueError(f"{path}:{number}: expected 'number; radical; ideograph'")
        if fields[0].isdigit():
            out[int(fields[0])] = chr(int(fields[1], 16))
    return out

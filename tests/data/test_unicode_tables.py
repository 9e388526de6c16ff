"""The Unicode table readers on hand-written excerpts (no Debian package needed)."""

import bz2

import pytest

from experts.data.embedded import unicode_tables as ut


def write(tmp_path, name, text):
    path = tmp_path / name
    if name.endswith(".bz2"):
        path.write_bytes(bz2.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def test_ranges(tmp_path):
    path = write(tmp_path, "Scripts.txt", "# c\n0041..005A ; Latin # Lu [26]\n00AA ; Latin\n")
    ranges = ut.read_ranges(path)
    assert ranges == [(range(0x41, 0x5B), "Latin"), (range(0xAA, 0xAB), "Latin")]
    lookup = ut.range_lookup(ranges)
    assert lookup[0x41] == lookup[0x5A] == "Latin" and 0x5B not in lookup


def test_bad_range(tmp_path):
    path = write(tmp_path, "Blocks.txt", "0000..00ZZ; Basic Latin\n")
    with pytest.raises(ValueError, match=r"Blocks.txt:1: bad code point range '0000..00ZZ'"):
        ut.read_ranges(path)


def test_unicode_data(tmp_path):
    path = write(
        tmp_path,
        "UnicodeData.txt",
        "0041;LATIN CAPITAL LETTER A;Lu;0;L;;;;;N;;;;0061;\n"
        "00C9;LATIN CAPITAL LETTER E WITH ACUTE;Lu;0;L;0045 0301;;;;N;;;;00E9;\n"
        "212A;KELVIN SIGN;Lu;0;L;004B;;;;N;;;;006B;\n"
        "FF21;FULLWIDTH LATIN CAPITAL LETTER A;Lu;0;L;<wide> 0041;;;;N;;;;FF41;\n"
        "4E00;<CJK Ideograph, First>;Lo;0;L;;;;;N;;;;;\n"
        "4E05;<CJK Ideograph, Last>;Lo;0;L;;;;;N;;;;;\n",
    )
    chars = ut.read_unicode_data(path)
    assert chars[0x41].category == "Lu" and not chars[0x41].duplicates_another
    assert not chars[0xC9].duplicates_another  # a composed letter is its own picture
    assert chars[0x212A].duplicates_another  # singleton: draws as K
    assert chars[0xFF21].duplicates_another  # compatibility: draws as A
    assert [chars[c].category for c in range(0x4E00, 0x4E06)] == ["Lo"] * 6
    assert chars[0x4E03].name == "CJK IDEOGRAPH-4E03"


def test_unihan_and_radicals(tmp_path):
    path = write(
        tmp_path,
        "Unihan_IRGSources.txt.bz2",
        "# header\nU+4E00\tkRSUnicode\t1.0\nU+4E00\tkTotalStrokes\t1\nU+4336\tkRSUnicode\t120'.3\n",
    )
    rs = ut.read_unihan_field(path, "kRSUnicode")
    assert rs == {0x4E00: "1.0", 0x4336: "120'.3"}
    assert ut.kangxi_radical(rs[0x4336]) == 120
    assert ut.kangxi_radical("85.5 85.6") == 85
    radicals = ut.read_cjk_radicals(
        write(tmp_path, "CJKRadicals.txt", "1; 2F00; 4E00\n90'; 2E26; 4E2C\n")
    )
    assert radicals == {1: "\u2f00"}


def test_emoji_test(tmp_path):
    path = write(
        tmp_path,
        "emoji-test.txt",
        "# group: Smileys & Emotion\n# subgroup: face-smiling\n"
        "1F600 ; fully-qualified # 😀 E1.0 grinning face\n"
        "263A FE0F ; fully-qualified # ☺️ E0.6 smiling face\n"
        "263A ; unqualified # ☺ E0.6 smiling face\n"
        "# group: People & Body\n# subgroup: hand-fingers-open\n"
        "1F44B 1F3FB ; fully-qualified # 👋🏻 E1.0 waving hand: light skin tone\n"
        "1F468 200D 1F52C ; fully-qualified # 👨‍🔬 E4.0 man scientist\n"
        "# group: Component\n# subgroup: skin-tone\n"
        "1F3FB ; component # 🏻 E1.0 light skin tone\n",
    )
    emoji = ut.read_emoji_test(path)
    assert [e.name for e in emoji] == ["grinning face", "smiling face", "man scientist"]
    assert emoji[1].key == "263A" and emoji[1].text == "\u263a\ufe0f"
    assert emoji[2].key == "1F468-1F52C" and emoji[2].subgroup == "hand-fingers-open"


def test_emoji_test_errors(tmp_path):
    before_group = write(tmp_path, "a.txt", "1F600 ; fully-qualified # 😀 E1.0 grinning face\n")
    with pytest.raises(ValueError, match=r"a.txt:1: emoji before any group/subgroup header"):
        ut.read_emoji_test(before_group)
    garbled = write(tmp_path, "b.txt", "# group: G\n# subgroup: s\n1F600 fully-qualified\n")
    with pytest.raises(ValueError, match=r"b.txt:3: unrecognised emoji line"):
        ut.read_emoji_test(garbled)


def test_missing_table_names_the_package(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"install the Debian package unicode-data"):
        ut.unicode_path(str(tmp_path), "Scripts.txt")

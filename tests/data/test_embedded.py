"""The embedded upstream on a small slice: a few faces, characters and emoji.

Needs Debian packages (CI installs them); each missing one skips with its name."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from experts.data import pipelines, upstream
from experts.data.builders import EmbeddedUpstream, EmbeddedUpstreamConfig
from experts.data.embedded import fonts
from experts.data.embedded import plan as embedded
from experts.data.embedded import unicode_tables as ut

REQUIRED = {
    "unicode-data": os.path.join(ut.UNICODE_DIR, "UnicodeData.txt"),
    "fonts-dejavu-core": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "fonts-freefont-ttf": "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "fonts-noto-cjk": "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "fonts-noto-color-emoji": fonts.NOTO_EMOJI_FONT,
    "ruby-gemojione": os.path.join(fonts.EMOJIONE_DIR, "1F600.png"),
}
missing = [pkg for pkg, path in REQUIRED.items() if not os.path.exists(path)]
pytestmark = pytest.mark.skipif(
    bool(missing), reason=f"needs the Debian packages {', '.join(missing)}"
)

SPEC = embedded.EmbeddedSpec(
    font_patterns=(
        "DejaVuSans.ttf",
        "DejaVuSerif.ttf",
        "DejaVuSansMono.ttf",
        "FreeSans.ttf",
        "NotoSansCJK-Regular.ttc",
    ),
    min_faces=3,
    max_faces=3,
    max_chars_per_block=3,
    han_max_frequency=1,
    scripts=("Latin", "Greek", "Han", "Common"),
    emoji_groups=("Animals & Nature", "Flags"),
    max_emoji_per_subgroup=1,
    emoji_variants=2,
    validation_percent=20,
)


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    config = EmbeddedUpstreamConfig(
        name="test_slice",
        image_size=24,
        spec=SPEC,
        experts=upstream.ExpertChoice(num_experts=6, min_images=10),
    )
    b = EmbeddedUpstream(config=config, data_dir=str(tmp_path_factory.mktemp("tfds")))
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return b


@pytest.fixture(scope="module")
def info(builder):
    return upstream.load_info(builder)


@pytest.fixture(scope="module")
def plan():
    """A plan made again, apart from the builder's (planning takes seconds)."""
    return embedded.make_plan(SPEC)


def test_hierarchy_is_a_dag_with_several_parents(info):
    h = info.hierarchy
    assert set(h.roots) == {"glyph", "emoji"}
    # "A" (Latin) is under its script/block and its category.
    assert h.parents("char/U+00CA") == ("latin/latin-1-supplement", "category/uppercase-letter")
    assert h.ancestors("char/U+00CA") >= {"script/latin", "category/letter", "glyph"}
    han = [lab for lab in info.labels if h.ancestors(lab) >= {"script/han"}]
    assert len(han) > 50
    for lab in han:  # Han characters also lead to their Kangxi radical
        assert len(h.parents(lab)) == 3
        assert any(p.startswith("han/radical-") for p in h.parents(lab))
    # 人 (U+4EBA) is radical 9.
    assert "han/radical-009" in h.parents("char/U+4EBA")
    # Emoji: group -> subgroup -> emoji; flags are sequences of two code points.
    assert h.parents("emoji/U+1F1E6-1F1E8") == ("emoji/flags/country-flag",)
    assert h.parents("emoji/flags/country-flag") == ("emoji/flags",)
    assert info.descriptions["emoji/U+1F1E6-1F1E8"].endswith("flag: Ascension Island")


def test_images_and_styles(builder, info):
    counts = collections_counter(builder)
    # Three faces per character; two styles x two layouts per emoji, across both splits.
    for lab in info.labels:
        assert counts[lab] == (3 if lab.startswith("char/") else 4), lab
    assert builder.info.splits["validation"].num_examples > 0
    styles = set()
    for ex in builder.as_dataset(split="train").take(400).as_numpy_iterator():
        image = ex["image"]
        assert image.shape == (24, 24, 3)
        assert image.std() > 10  # something is drawn
        styles.add(ex["style"].decode())
    assert {"noto", "emojione"} <= styles
    assert any(s.startswith("DejaVu Sans") for s in styles)


def collections_counter(builder):
    import collections

    names = builder.info.features["label"].names
    counter = collections.Counter()
    for split in ("train", "validation"):
        for ex in builder.as_dataset(split=split).as_numpy_iterator():
            counter[names[ex["label"]]] += 1
    return counter


def test_renders_are_not_tofu():
    # A character the face lacks draws the .notdef box: the renderer must never be asked for
    # it (coverage comes from the cmap), and covered glyphs differ from that box.
    face = fonts.load_faces(REQUIRED["fonts-dejavu-core"])[0]
    assert 0x41 in face.coverage and 0x4E00 not in face.coverage
    a = fonts.render_glyph(face, "A", 32)
    tofu = fonts.render_glyph(face, "\u4e00", 32)
    assert a is not None and not np.array_equal(a, tofu)
    assert fonts.render_glyph(face, " ", 32) is None  # blank glyphs are rejected


def test_emoji_styles_differ():
    noto = fonts.noto_emoji_image("\U0001f436")
    one = fonts.emojione_image("1F436")
    assert noto is not None and one is not None
    a, b = fonts.place_emoji(noto, 32), fonts.place_emoji(one, 32)
    assert a.shape == b.shape == (32, 32, 3) and np.abs(a.astype(int) - b).mean() > 5
    # A ZWJ sequence the font lacks as one glyph is refused rather than drawn as two.
    assert fonts.noto_emoji_image("\U0001f436\u200d\U0001f436") is None


def test_build_is_deterministic(info, plan):
    again = plan
    assert again.labels == list(info.labels)
    assert again.hierarchy == info.hierarchy
    assert again.label_counts("train") == info.label_counts["train"]
    item = again.items[0]
    np.testing.assert_array_equal(
        embedded.render(item, again.faces, 24, SPEC), embedded.render(item, again.faces, 24, SPEC)
    )


def test_recorded_experts_and_pipeline(builder, info):
    assert 1 <= len(info.experts) <= 6
    assert "glyph" not in info.experts and "emoji" not in info.experts
    counts = info.node_counts()
    assert all(counts[e] >= 10 for e in info.experts)
    ds = pipelines.expert_mix(builder, info, info.experts, "train", 16, 32, training=True)
    batch = next(ds.as_numpy_iterator())
    assert batch["image"].shape == (16, 32, 32, 3) and batch["targets"].shape == (
        16,
        len(info.hierarchy),
    )


def test_sample_grid(builder, tmp_path):
    from PIL import Image

    from experts.data import build_upstream

    path = str(tmp_path / "grid.png")
    build_upstream.sample_grid(builder, path, side=4)
    with Image.open(path) as grid:
        assert grid.size[0] == grid.size[1] >= 4 * 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]  # no temporary left


def _digest(image) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def test_probe_classes_never_reach_the_upstream(builder, info, plan):
    assert plan.probe_labels and not set(plan.probe_labels) & set(info.labels)
    for label in plan.probe_labels:
        assert label in plan.full_hierarchy and label not in info.hierarchy
    # By content too: no probe image is any upstream image.
    upstream_images = {
        _digest(ex["image"])
        for split in ("train", "validation")
        for ex in builder.as_dataset(split=split).as_numpy_iterator()
    }
    probe_images = {_digest(embedded.render(it, plan.faces, 24, SPEC)) for it in plan.probe_items}
    assert probe_images and not probe_images & upstream_images


def test_written_probes_are_labelled_within_their_node(plan, tmp_path):
    from experts.data.embedded import probes

    nodes = ["glyph", "emoji", "script/latin"]
    out = str(tmp_path / "probes")
    manifest = probes.ensure_probes(
        lambda: plan, SPEC, nodes, 24, out, upstream="test", max_images=40
    )
    assert sorted(os.listdir(tmp_path)) == ["probes"]  # no temporary left
    assert manifest["probes"], manifest
    for probe in manifest["probes"]:
        folder = os.path.join(out, probe["path"])
        classes = os.listdir(folder)
        assert len(classes) == probe["classes"] >= 2
        images = sum(len(os.listdir(os.path.join(folder, c))) for c in classes)
        assert images == probe["images"] and images <= 40 or probe["classes"] == 2
        below = {embedded.slug(c) for c in probes.classes_below(plan, probe["node"])}
        assert set(classes) <= below
    # A second call with the same request reuses the folder; another cap rewrites it.
    again = probes.ensure_probes(
        lambda: 1 / 0, SPEC, nodes, 24, out, upstream="test", max_images=40
    )
    assert again == manifest
    other = probes.ensure_probes(lambda: plan, SPEC, nodes, 24, out, upstream="test", max_images=8)
    assert other["max_images"] == 8 and sorted(os.listdir(tmp_path)) == ["probes"]


def test_build_upstream_reports_the_builders_own_choice(builder):
    from experts.data import build_upstream
    from experts.data.builders.embedded_upstream import embedded_choice

    choice = build_upstream.expert_choice(builder, 5, 10, 0.9)
    assert choice == upstream.ExpertChoice(num_experts=5, min_images=10, max_overlap=0.9)
    default = EmbeddedUpstream(config="32px", data_dir=builder.data_dir)
    choice = build_upstream.expert_choice(default, 24, 500, 0.8)
    assert choice == dataclasses.replace(embedded_choice(), num_experts=24)
    assert not choice.exclude_roots and choice.include[:2] == ("glyph", "emoji")

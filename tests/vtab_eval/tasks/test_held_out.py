"""The matched tasks draw classes the embedded upstream never saw: checked by rule on
the whole pools, and by content hash between the upstream, its probes and the tasks."""

import glob
import os

import numpy as np
import pytest
from PIL import Image

from experts.data.embedded import fonts, probes
from experts.data.embedded import plan as embedded
from experts.data.embedded import unicode_tables as ut
from vtab_eval import tasks
from vtab_eval.tasks.embedded import common, held_out

REQUIRED = {
    "unicode-data": os.path.join(held_out.UNICODE_DIR, "emoji/emoji-test.txt"),
    "fonts-noto-cjk": held_out.NOTO_CJK_FILES[0],
    "fonts-noto-color-emoji": held_out.NOTO_EMOJI_FONT,
    "ruby-gemojione": os.path.join(held_out.EMOJIONE_DIR, "1F600.png"),
    "fonts-dejavu-core": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
}
missing = [pkg for pkg, path in REQUIRED.items() if not os.path.exists(path)]
pytestmark = pytest.mark.skipif(bool(missing), reason=f"needs Debian packages {missing}")

# A small upstream whose emoji are the bases of the task's skin-tone variants, over the
# scripts and emoji groups the task declarations name.
SPEC = embedded.EmbeddedSpec(
    font_patterns=("DejaVuSans.ttf", "NotoSansCJK-Regular.ttc"),
    min_faces=1,
    max_faces=2,
    max_chars_per_block=4,
    han_max_frequency=1,
    scripts=("Han", "Common"),
    emoji_groups=("People & Body", "Objects"),
    max_emoji_per_subgroup=1,
    emoji_variants=2,
)
SIZE = held_out.SIZE


def test_emoji_task_leaves_out_every_emoji_the_upstream_may_take():
    emoji = ut.read_emoji_test(ut.unicode_path(ut.UNICODE_DIR, "emoji/emoji-test.txt"))
    upstream = {e.key for e in emoji if fonts.emojione_image(e.key) is not None}
    pool = {key for group in held_out.emoji_pool().values() for key, _ in group}
    assert len(pool) > 500 and not pool & upstream


def test_han_task_leaves_out_every_character_the_upstream_may_take():
    assert held_out.UPSTREAM_HAN_MAX_FREQUENCY == embedded.EmbeddedSpec().han_max_frequency
    frequency = ut.read_unihan_field(
        ut.unicode_path(ut.UNICODE_DIR, "Unihan_DictionaryLikeData.txt.bz2"), "kFrequency"
    )
    pool = held_out.han_pool()
    chars = [cp for r in held_out.HAN_RADICALS for cp in pool[r]]
    assert len(chars) > 5000
    assert all(int(frequency.get(cp, 99)) > held_out.UPSTREAM_HAN_MAX_FREQUENCY for cp in chars)


def test_all_tones_of_an_emoji_share_a_split():
    assert held_out.base_key("1F44B-1F3FD") == held_out.base_key("1F44B-1F3FB") == "1F44B"
    assert held_out.base_key("1F9D1-1F3FE-1F33E") == "1F9D1-1F33E"
    splits = [held_out.split_of(f"U+{cp:04X}") for cp in range(0x4E00, 0x4E00 + 2000)]
    shares = [splits.count(s) / len(splits) for s in ("train", "validation", "test")]
    np.testing.assert_allclose(shares, [0.45, 0.15, 0.40], atol=0.05)


@pytest.fixture(scope="module")
def plan():
    return embedded.make_plan(SPEC)


@pytest.fixture(scope="module")
def image_sets(plan, tmp_path_factory):
    """Every image of the small upstream and its probes, and of the tiny task splits."""
    sets = {"upstream": [embedded.render(it, plan.faces, SIZE, SPEC) for it in plan.items]}
    out = str(tmp_path_factory.mktemp("probes") / "probes")
    probes.write_probes(plan, SPEC, ["glyph", "emoji"], SIZE, out, upstream="test")
    pngs = sorted(glob.glob(os.path.join(out, "*", "*", "*.png")))
    sets["probes"] = [np.asarray(Image.open(p).convert("RGB")) for p in pngs]
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    for spec in ('mini_emoji(config="tiny")', 'mini_han_radical(config="tiny")'):
        task = tasks.get_task(spec, data_dir=data_dir)
        for split in ("train800", "val200", "test"):
            sets[f"{spec}:{split}"] = [image.numpy() for image, _ in task.as_dataset(split)]
    assert all(len(images) for images in sets.values()), {k: len(v) for k, v in sets.items()}
    return sets


def test_no_image_is_shared_between_upstream_probes_and_task_splits(image_sets):
    assert common.shared_images(image_sets) == {}


def test_the_check_catches_a_shared_image(image_sets):
    leaked = dict(image_sets)
    split = 'mini_emoji(config="tiny"):test'
    leaked[split] = [*image_sets[split], image_sets["upstream"][-1]]
    assert common.shared_images(leaked) == {(split, "upstream"): 1}


def test_declared_nodes_are_nodes_of_the_embedded_upstream(plan):
    suite = tasks.get_suite("embedded", data_dir="/nonexistent")
    named = {node for task in suite for node in task.nodes}
    hierarchy = plan.full_hierarchy
    assert named and named <= set(hierarchy.nodes), named - set(hierarchy.nodes)

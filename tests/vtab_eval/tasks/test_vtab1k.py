"""The 19 VTAB-1k tasks against tfds.testing.mock_data: no network, no real data.

Metadata with the real datasets' split sizes is written to a temporary data_dir, so the
split strings are computed exactly as on prepared data; the expected strings are those
google-research/task_adaptation produces for those sizes.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from vtab_eval import tasks
from vtab_eval.tasks import vtab1k

# Real split sizes of the pinned tfds versions.
REAL_SIZES = {
    "caltech101:3.*.*": {"train": 3060, "test": 6084},
    "cifar100:3.*.*": {"train": 50000, "test": 10000},
    "dtd:3.*.*": {"train": 1880, "validation": 1880, "test": 1880},
    "oxford_flowers102:2.*.*": {"train": 1020, "validation": 1020, "test": 6149},
    "sun397/tfds:4.*.*": {"train": 76128, "validation": 10875, "test": 21750},
    "svhn_cropped:3.*.*": {"train": 73257, "test": 26032},
    "patch_camelyon:2.*.*": {"train": 262144, "validation": 32768, "test": 32768},
    "eurosat/rgb:2.*.*": {"train": 27000},
    "resisc45:3.*.*": {"train": 31500},
    "diabetic_retinopathy_detection/btgraham-300:3.*.*": {
        "train": 35126,
        "validation": 10906,
        "test": 42670,
    },
    "clevr:3.*.*": {"train": 70000, "validation": 15000, "test": 15000},
    "dmlab:2.0.1": {"train": 65550, "validation": 22628, "test": 22735},
    "kitti:3.1.0": {"train": 6347, "validation": 423, "test": 711},
    "dsprites:2.*.*": {"train": 737280},
    "smallnorb:2.*.*": {"train": 24300, "test": 24300},
}
PETS_SIZES = {"train": 3680, "test": 3669}

VAL = {"train800": "train[:800]", "val200": "validation[:200]"}
VAL["train800val200"] = "train[:800]+validation[:200]"


def held_out(cut):
    return {
        "train800": "train[:800]",
        "val200": f"train[{cut}:{cut + 200}]",
        "train800val200": f"train[:800]+train[{cut}:{cut + 200}]",
    }


# spec: (tfds name, version, group, num_classes, split strings, test size)
EXPECTED = {
    "caltech101": ("caltech101", "3.0.2", "natural", 102, {**held_out(2754), "test": "test"}, 6084),
    "cifar(num_classes=100)": (
        "cifar100", "3.0.2", "natural", 100, {**held_out(45000), "test": "test"}, 10000,
    ),
    "dtd": ("dtd", "3.0.1", "natural", 47, {**VAL, "test": "test"}, 1880),
    "oxford_flowers102": ("oxford_flowers102", "2.1.1", "natural", 102, {**VAL, "test": "test"}, 6149),
    "oxford_iiit_pet": ("oxford_iiit_pet", "3.2.0", "natural", 37, {**held_out(2944), "test": "test"}, 3669),
    "sun397": ("sun397", "4.0.0", "natural", 397, {**VAL, "test": "test"}, 21750),
    "svhn": ("svhn_cropped", "3.1.0", "natural", 10, {**held_out(65931), "test": "test"}, 26032),
    "patch_camelyon": ("patch_camelyon", "2.0.0", "specialized", 2, {**VAL, "test": "test"}, 32768),
    "eurosat": ("eurosat", "2.0.0", "specialized", 10, {**held_out(16200), "test": "train[21600:]"}, 5400),
    "resisc45": ("resisc45", "3.0.0", "specialized", 45, {**held_out(18900), "test": "train[25200:]"}, 6300),
    'diabetic_retinopathy(config="btgraham-300")': (
        "diabetic_retinopathy_detection", "3.0.0", "specialized", 5, {**VAL, "test": "test"}, 42670,
    ),
    'clevr(task="count_all")': (
        "clevr", "3.1.0", "structured", 8, {**held_out(63000), "test": "validation"}, 15000,
    ),
    'clevr(task="closest_object_distance")': (
        "clevr", "3.1.0", "structured", 6, {**held_out(63000), "test": "validation"}, 15000,
    ),
    "dmlab": ("dmlab", "2.0.1", "structured", 6, {**VAL, "test": "test"}, 22735),
    'kitti(task="closest_vehicle_distance")': (
        "kitti", "3.1.0", "structured", 4, {**VAL, "test": "test"}, 711,
    ),
    'dsprites(predicted_attribute="label_x_position",num_classes=16)': (
        "dsprites", "2.0.0", "structured", 16, {**held_out(589824), "test": "train[663552:]"}, 73728,
    ),
    'dsprites(predicted_attribute="label_orientation",num_classes=16)': (
        "dsprites", "2.0.0", "structured", 16, {**held_out(589824), "test": "train[663552:]"}, 73728,
    ),
    'smallnorb(predicted_attribute="label_azimuth")': (
        "smallnorb", "2.0.0", "structured", 18,
        {"train800": "train[:800]", "val200": "test[:200]",
         "train800val200": "train[:800]+test[:200]", "test": "test[50%:]"},
        12150,
    ),
    'smallnorb(predicted_attribute="label_elevation")': (
        "smallnorb", "2.0.0", "structured", 9,
        {"train800": "train[:800]", "val200": "test[:200]",
         "train800val200": "train[:800]+test[:200]", "test": "test[50%:]"},
        12150,
    ),
}  # fmt: skip

# CLEVR and KITTI labels come from object lists, which tfds' mock fills with lists of
# unrelated random lengths (3 coordinates for 40 objects, types for 12): those tasks get
# mock scenes whose object features agree, generated below.
OBJECT_TASKS = [s for s in EXPECTED if s.startswith(("clevr", "kitti"))]


def mock_scenes(builder, split, **kwargs):
    del split, kwargs
    rng = np.random.default_rng(0)
    examples = []
    for _ in range(3):
        n = int(rng.integers(3, 11))
        coords = rng.uniform(0, 1, (n, 3)).astype(np.float32)
        if builder.name == "clevr":
            coords[:, 2] = rng.uniform(7, 12, n)
            objects = {"pixel_coords": coords, "size": rng.integers(0, 2, n),
                       "shape": rng.integers(0, 3, n)}  # fmt: skip
        else:
            coords[:, 2] = rng.uniform(2, 40, n)
            objects = {"location": coords, "type": rng.integers(0, 8, n)}
        image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
        examples.append({"image": image, "objects": objects})
    objects_spec = {
        key: tf.TensorSpec([None, *np.shape(value)[1:]], tf.as_dtype(np.asarray(value).dtype))
        for key, value in examples[0]["objects"].items()
    }
    return tf.data.Dataset.from_generator(
        lambda: iter(examples),
        output_signature={
            "image": tf.TensorSpec([None, None, 3], tf.uint8),
            "objects": objects_spec,
        },
    )


def _split_dict(sizes):
    return tfds.core.SplitDict(
        [tfds.core.SplitInfo(name=k, shard_lengths=[v], num_bytes=0) for k, v in sizes.items()]
    )


@pytest.fixture(scope="module")
def metadata_dir(tmp_path_factory):
    """A data_dir holding only dataset_info.json files, as a prepared one would."""
    root = str(tmp_path_factory.mktemp("tfds_metadata"))
    for name, sizes in REAL_SIZES.items():
        builder = tfds.builder(name, data_dir=root)
        builder.info.set_splits(_split_dict(sizes))
        os.makedirs(builder.data_dir, exist_ok=True)
        builder.info.write_to_directory(builder.data_dir)
    # tfds 4.9's code only builds pets 4.0.0; task_adaptation's 3.x pin loads from files.
    builder = tfds.builder("oxford_iiit_pet:4.0.0", data_dir=root)
    builder.info.set_splits(_split_dict(PETS_SIZES))
    pets_dir = os.path.join(root, "oxford_iiit_pet", "3.2.0")
    os.makedirs(pets_dir)
    builder.info.write_to_directory(pets_dir)
    info_path = os.path.join(pets_dir, "dataset_info.json")
    with open(info_path) as f:
        info = json.load(f)
    info["version"] = "3.2.0"
    with open(info_path, "w") as f:
        json.dump(info, f)
    return root


@pytest.fixture
def mocked(metadata_dir):
    with tfds.testing.mock_data(
        num_examples=3, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=metadata_dir
    ):
        yield metadata_dir


def test_suite_is_exactly_the_19_tasks():
    assert tuple(EXPECTED) == tasks.suite_specs("vtab1k")


@pytest.mark.parametrize("spec", list(EXPECTED))
def test_builder_version_and_splits_follow_task_adaptation(mocked, spec):
    name, version, group, num_classes, splits, test_size = EXPECTED[spec]
    task = tasks.get_task(spec, data_dir=mocked)
    assert task.builder.name == name
    assert str(task.builder.version) == version
    assert (task.group, task.num_classes) == (group, num_classes)
    assert task.tfds_splits() == splits
    sizes = {split: task.num_examples(split) for split in tasks.SPLITS}
    assert sizes == {"train800": 800, "val200": 200, "train800val200": 1000, "test": test_size}


@pytest.mark.parametrize("spec", list(EXPECTED))
def test_mock_examples_are_uint8_rgb_with_labels_in_range(metadata_dir, spec):
    scenes = mock_scenes if spec in OBJECT_TASKS else None
    with tfds.testing.mock_data(
        num_examples=3,
        policy=tfds.testing.MockPolicy.USE_FILES,
        data_dir=metadata_dir,
        as_dataset_fn=scenes,
    ):
        task = tasks.get_task(spec, data_dir=metadata_dir)
        pairs = list(task.as_dataset("train800val200"))
    assert len(pairs) == 3
    for image, label in pairs:
        assert image.dtype == tf.uint8 and image.shape.rank == 3 and image.shape[-1] == 3
        assert label.dtype == tf.int64 and label.shape == ()
        assert 0 <= int(label) < task.num_classes


def test_nothing_downloads_by_default(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        tfds.core.DatasetBuilder, "download_and_prepare", lambda self, **kw: calls.append(kw)
    )
    task = tasks.get_task("dtd", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="dtd:3.*not prepared.*pass download=True"):
        task.as_dataset("test")
    assert calls == []


def test_download_flag_prepares_without_gcs(tmp_path, monkeypatch):
    calls = []

    def record(self, **kwargs):
        calls.append(kwargs["download_config"])
        raise RuntimeError("stop here")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", record)
    task = tasks.get_task("dtd", data_dir=str(tmp_path), download=True)
    with pytest.raises(RuntimeError, match="stop here"):
        task.as_dataset("test")
    assert len(calls) == 1 and calls[0].try_download_gcs is False


def test_pets_version_missing_is_a_clear_error(tmp_path):
    task = tasks.get_task("oxford_iiit_pet", data_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match=r"oxford_iiit_pet:3\.\*\.\*.*only: 4\.0\.0"):
        task.as_dataset("test")


# --- label functions on hand-made examples ------------------------------------------


def _clevr_example(depths, shapes=None):
    n = len(depths)
    coords = np.zeros((n, 3), np.float32)
    coords[:, 2] = depths
    return {
        "image": tf.zeros([4, 4, 3], tf.uint8),
        "objects": {
            "pixel_coords": tf.constant(coords),
            "size": tf.zeros([n], tf.int64),
            "shape": tf.constant(shapes if shapes is not None else [0] * n, tf.int64),
        },
    }


@pytest.mark.parametrize(
    "depths, label",
    [([7.9, 12.0, 9.0], 0), ([8.2, 9.0, 9.9], 1), ([9.7, 11, 12], 4), ([10.5] * 3, 5)],
)
def test_clevr_closest_object_distance_bins(depths, label):
    _, pair_fn = vtab1k.clevr_pair_fn("closest_object_distance")
    assert int(pair_fn(_clevr_example(depths))[1]) == label


def test_clevr_counts():
    _, count_all = vtab1k.clevr_pair_fn("count_all")
    assert int(count_all(_clevr_example([9.0] * 5))[1]) == 2  # 3..10 objects -> 0..7
    _, cylinders = vtab1k.clevr_pair_fn("count_cylinders")
    assert int(cylinders(_clevr_example([9.0] * 4, shapes=[2, 0, 2, 1]))[1]) == 2


@pytest.mark.parametrize(
    "types, depths, label",
    [
        ([3, 4], [3.0, 5.0], 3),  # no car/van/truck: its own class
        ([0, 3], [30.0, 2.0], 2),  # the pedestrian at 2 m does not count
        ([1, 2], [25.0, 7.0], 0),
        ([2], [8.5], 1),
        ([0, 0], [21.0, 20.5], 2),
    ],
)
def test_kitti_closest_vehicle_distance_bins(types, depths, label):
    location = np.zeros((len(types), 3), np.float32)
    location[:, 2] = depths
    example = {"objects": {"type": tf.constant(types, tf.int64), "location": tf.constant(location)}}
    assert int(vtab1k.KITTI_TASKS["closest_vehicle_distance"][1](example)) == label


def test_dsprites_binning_and_scaling():
    num_classes, pair_fn = vtab1k.binned_attribute_pair_fn("label_orientation", 40, 16, "dsprites")
    assert num_classes == 16
    image = tf.ones([64, 64, 1], tf.uint8)
    labels = [int(pair_fn({"image": image, "label_orientation": v})[1]) for v in range(40)]
    assert labels[0] == 0 and labels[2] == 0 and labels[3] == 1 and labels[39] == 15
    assert sorted(set(labels)) == list(range(16))
    assert int(tf.reduce_max(pair_fn({"image": image, "label_orientation": 0})[0])) == 255
    assert vtab1k.binned_attribute_pair_fn("label_x_position", 32, None, "d")[0] == 32

"""The 19 VTAB-1k tasks, with google-research/task_adaptation's tfds builders and splits.

Every version pin and split rule below follows task_adaptation's `data/*.py`:
`train800 = train[:800]`; `val200` is `validation[:200]` where the dataset has a
validation split, otherwise the head of the held-out part of train (whose start is a
per-dataset percentage of train's size); `train800val200` is their union; `test` is the
split task_adaptation evaluates on (for CLEVR its `validation`, for dSprites, EuroSAT and
RESISC45 the tail of train, for smallNORB the second half of test).

The label functions for CLEVR, KITTI, dSprites and smallNORB are shared with the
embedded suite, whose builders mirror those datasets' features.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from vtab_eval.tasks import base
from vtab_eval.tasks.registry import register, register_suite

# --- label functions -----------------------------------------------------------------


def _bin_index(value: tf.Tensor, thresholds: np.ndarray) -> tf.Tensor:
    """Index of the last threshold strictly below `value` (thresholds ascending)."""
    below = tf.cast(tf.constant(thresholds, tf.float32) < tf.cast(value, tf.float32), tf.int64)
    return tf.reduce_sum(below) - 1


CLEVR_DISTANCE_THRESHOLDS = np.array([0.0, 8.0, 8.5, 9.0, 9.5, 10.0, 100.0])
CLEVR_TASKS = {
    # task: (num_classes, example -> label)
    "count_all": (8, lambda ex: tf.size(ex["objects"]["size"], out_type=tf.int64) - 3),
    "count_cylinders": (
        11,
        lambda ex: tf.reduce_sum(tf.cast(tf.equal(ex["objects"]["shape"], 2), tf.int64)),
    ),
    "closest_object_distance": (
        6,
        lambda ex: _bin_index(
            tf.reduce_min(ex["objects"]["pixel_coords"][:, 2]), CLEVR_DISTANCE_THRESHOLDS
        ),
    ),
}


def _kitti_closest_vehicle(ex: dict) -> tf.Tensor:
    # Car, Van and Truck are types 0-2; a far sentinel gives "no vehicle" its own class.
    is_vehicle = ex["objects"]["type"] < 3
    depth = tf.boolean_mask(ex["objects"]["location"][:, 2], is_vehicle)
    dist = tf.reduce_min(tf.concat([depth, tf.constant([1000.0])], axis=0))
    return _bin_index(dist, np.array([-100.0, 8.0, 20.0, 999.0]))


def _kitti_count_vehicles(ex: dict) -> tf.Tensor:
    count = tf.reduce_sum(tf.cast(ex["objects"]["type"] < 3, tf.int64))
    return tf.minimum(count, 3)


KITTI_TASKS = {
    "closest_vehicle_distance": (4, _kitti_closest_vehicle),
    "count_vehicles": (4, _kitti_count_vehicles),
}


def clevr_pair_fn(task: str) -> tuple[int, base.PairFn]:
    if task not in CLEVR_TASKS:
        raise ValueError(f"clevr: unknown task {task!r}; expected one of {sorted(CLEVR_TASKS)}")
    num_classes, label_fn = CLEVR_TASKS[task]
    return num_classes, lambda ex: (ex["image"], label_fn(ex))


def binned_attribute_pair_fn(
    attribute: str, num_original: int, num_classes: int | None, dataset: str
) -> tuple[int, base.PairFn]:
    """dSprites-style label: nearby integer values grouped into `num_classes` bins."""
    if num_classes is None:
        num_classes = num_original
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise ValueError(f"{dataset}: num_classes must be an integer, got {num_classes!r}")
    if not 2 <= num_classes <= num_original:
        raise ValueError(
            f"{dataset}: num_classes={num_classes} for {attribute} must be in [2, {num_original}]"
        )
    factor = float(num_original) / num_classes

    def pair_fn(ex):
        label = tf.math.floordiv(tf.cast(ex[attribute], tf.float32), factor)
        # dSprites images hold 0/1; VTAB scales them to 0/255.
        return ex["image"] * 255, tf.cast(label, tf.int64)

    return num_classes, pair_fn


def attribute_pair_fn(attribute: str) -> base.PairFn:
    return lambda ex: (ex["image"], ex[attribute])


def check_attribute(builder_features, attribute: str, dataset: str) -> int:
    """Number of classes of a ClassLabel attribute, or a clear error."""
    labels = sorted(k for k in builder_features if k.startswith("label_"))
    if attribute not in labels:
        raise ValueError(
            f"{dataset}: predicted_attribute {attribute!r} is not one of {', '.join(labels)}"
        )
    return builder_features[attribute].num_classes


# --- split rules beyond the three generic ones in base -------------------------------


def _smallnorb_splits(sizes: Mapping[str, int]) -> dict[str, str]:
    # smallNORB has train and test only; VTAB validates on test's first half.
    train800, val200 = base.head_slice("train", sizes, 800), base.head_slice("test", sizes, 200)
    return {
        "train800": train800,
        "val200": val200,
        "train800val200": f"{train800}+{val200}",
        "test": "test[50%:]",
    }


# --- the registry ----------------------------------------------------------------------


def _tfds_task(
    canonical, group, tfds_name, split_fn, num_classes=None, pair_fn=None, labels=None, **opts
):
    """A TfdsTask; `labels(features) -> (num_classes, pair_fn)` when they need the builder."""
    task = base.TfdsTask(
        canonical,
        group=group,
        num_classes=num_classes or 2,  # Placeholder until read from the builder below.
        tfds_name=tfds_name,
        split_fn=split_fn,
        pair_fn=pair_fn or base.image_label,
        **opts,
    )
    if labels is not None:
        task.num_classes, task.pair_fn = labels(task.builder.info.features)
    elif num_classes is None:
        task.num_classes = task.builder.info.features["label"].num_classes
    return task


@register("caltech101")
def caltech101(canonical, **opts):
    return _tfds_task(
        canonical, "natural", "caltech101:3.*.*", base.splits_from_train_percent(90), **opts
    )


@register("cifar")
def cifar(canonical, num_classes=10, **opts):
    if num_classes not in (10, 100):
        raise ValueError(f"cifar: num_classes must be 10 or 100, got {num_classes!r}")
    tfds_name = f"cifar{num_classes}:3.*.*"
    split_fn = base.splits_from_train_percent(90)
    return _tfds_task(canonical, "natural", tfds_name, split_fn, **opts)


@register("dtd")
def dtd(canonical, **opts):
    return _tfds_task(canonical, "natural", "dtd:3.*.*", base.splits_from_validation, **opts)


@register("oxford_flowers102")
def oxford_flowers102(canonical, **opts):
    return _tfds_task(
        canonical, "natural", "oxford_flowers102:2.*.*", base.splits_from_validation, **opts
    )


@register("oxford_iiit_pet")
def oxford_iiit_pet(canonical, **opts):
    # tfds 4.9's code builds only 4.0.0; task_adaptation's 3.x pin loads from a data_dir
    # where 3.x was prepared. The 37 breeds are fixed, so listing this task needs no data.
    split_fn = base.splits_from_train_percent(80)
    return _tfds_task(canonical, "natural", "oxford_iiit_pet:3.*.*", split_fn, 37, **opts)


@register("sun397")
def sun397(canonical, config="tfds", **opts):
    if config != "tfds":
        raise ValueError(f"sun397: config must be 'tfds' as in VTAB, got {config!r}")
    return _tfds_task(
        canonical, "natural", "sun397/tfds:4.*.*", base.splits_from_validation, **opts
    )


@register("svhn")
def svhn(canonical, **opts):
    return _tfds_task(
        canonical, "natural", "svhn_cropped:3.*.*", base.splits_from_train_percent(90), **opts
    )


@register("patch_camelyon")
def patch_camelyon(canonical, **opts):
    return _tfds_task(
        canonical, "specialized", "patch_camelyon:2.*.*", base.splits_from_validation, **opts
    )


@register("eurosat")
def eurosat(canonical, subset="rgb", **opts):
    if subset != "rgb":
        raise ValueError(f"eurosat: subset must be 'rgb' (3-channel images), got {subset!r}")
    return _tfds_task(
        canonical, "specialized", "eurosat/rgb:2.*.*", base.splits_from_train_only(60, 20), **opts
    )


@register("resisc45")
def resisc45(canonical, **opts):
    return _tfds_task(
        canonical, "specialized", "resisc45:3.*.*", base.splits_from_train_only(60, 20), **opts
    )


@register("diabetic_retinopathy")
def diabetic_retinopathy(canonical, config="btgraham-300", **opts):
    if not isinstance(config, str) or "/" in config or ":" in config:
        raise ValueError(f"diabetic_retinopathy: bad config {config!r}")
    tfds_name = f"diabetic_retinopathy_detection/{config}:3.*.*"
    return _tfds_task(canonical, "specialized", tfds_name, base.splits_from_validation, **opts)


@register("clevr")
def clevr(canonical, task, **opts):
    num_classes, pair_fn = clevr_pair_fn(task)
    # CLEVR's test labels are hidden: VTAB tests on its validation split.
    split_fn = base.splits_from_train_percent(90, test="validation")
    return _tfds_task(
        canonical, "structured", "clevr:3.*.*", split_fn, num_classes, pair_fn, **opts
    )


@register("dmlab")
def dmlab(canonical, **opts):
    return _tfds_task(canonical, "structured", "dmlab:2.0.1", base.splits_from_validation, **opts)


@register("kitti")
def kitti(canonical, task, **opts):
    if task not in KITTI_TASKS:
        raise ValueError(f"kitti: unknown task {task!r}; expected one of {sorted(KITTI_TASKS)}")
    num_classes, label_fn = KITTI_TASKS[task]
    return _tfds_task(
        canonical,
        "structured",
        "kitti:3.1.0",
        base.splits_from_validation,
        num_classes,
        lambda ex: (ex["image"], label_fn(ex)),
        **opts,
    )


@register("dsprites")
def dsprites(canonical, predicted_attribute, num_classes=None, **opts):
    def labels(features):
        num_original = check_attribute(features, predicted_attribute, "dsprites")
        return binned_attribute_pair_fn(predicted_attribute, num_original, num_classes, "dsprites")

    split_fn = base.splits_from_train_only(80, 10)
    return _tfds_task(canonical, "structured", "dsprites:2.*.*", split_fn, labels=labels, **opts)


@register("smallnorb")
def smallnorb(canonical, predicted_attribute, **opts):
    def labels(features):
        num_classes = check_attribute(features, predicted_attribute, "smallnorb")
        return num_classes, attribute_pair_fn(predicted_attribute)

    return _tfds_task(
        canonical, "structured", "smallnorb:2.*.*", _smallnorb_splits, labels=labels, **opts
    )


VTAB1K_SPECS = (
    # natural
    "caltech101",
    "cifar(num_classes=100)",
    "dtd",
    "oxford_flowers102",
    "oxford_iiit_pet",
    "sun397",
    "svhn",
    # specialized
    "patch_camelyon",
    "eurosat",
    "resisc45",
    'diabetic_retinopathy(config="btgraham-300")',
    # structured
    'clevr(task="count_all")',
    'clevr(task="closest_object_distance")',
    "dmlab",
    'kitti(task="closest_vehicle_distance")',
    'dsprites(predicted_attribute="label_x_position",num_classes=16)',
    'dsprites(predicted_attribute="label_orientation",num_classes=16)',
    'smallnorb(predicted_attribute="label_azimuth")',
    'smallnorb(predicted_attribute="label_elevation")',
)
register_suite("vtab1k", VTAB1K_SPECS)

"""The task interface and its tfds-backed implementation.

A task yields `(uint8 image [h, w, 3], int64 label)` pairs for the four VTAB-1k splits.
The tfds split strings (`train[:800]`, `train[45000:45200]`, ...) are computed from the
prepared dataset's split sizes, exactly as google-research/task_adaptation computes them.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

GROUPS = ("natural", "specialized", "structured")
# How a task relates to the upstream, declared before any run: "matched" (the domain of
# the upstream hierarchy nodes it names), "weak", or "unrelated"; None when the task does
# not say (a user's folder, real VTAB against an unknown upstream).
RELATIONS = ("matched", "weak", "unrelated")
# A hierarchy node name as experts/data/hierarchy.py allows it (vtab_eval never imports
# experts/: the names are checked here by form, and against the hierarchy in a test).
_NODE_NAME = re.compile(r"^(?!/)[^\s:,#]+$")
SPLITS = ("train800", "val200", "train800val200", "test")

# Maps a decoded tfds example to (image, label) before the common uint8/int64 cast.
PairFn = Callable[[dict], tuple[tf.Tensor, tf.Tensor]]
# Maps the split sizes of the prepared dataset ({"train": 50000, ...}) to tfds split strings.
SplitFn = Callable[[Mapping[str, int]], dict[str, str]]


class Task(abc.ABC):
    """A downstream classification task with VTAB-1k splits."""

    def __init__(
        self,
        spec: str,
        num_classes: int,
        group: str,
        relation: str | None = None,
        nodes: Sequence[str] = (),
    ):
        if group not in GROUPS:
            raise ValueError(f"task {spec}: group {group!r} is not one of {GROUPS}")
        if num_classes < 2:
            raise ValueError(f"task {spec}: num_classes must be >= 2, got {num_classes}")
        self.relation, self.nodes = check_relation(spec, relation, nodes)
        self.spec = spec
        # What names the task's results and cached features: its canonical spec, plus a
        # fingerprint of its files for a task read from the user's own files.
        self.key = spec
        self.num_classes = int(num_classes)
        self.group = group

    @property
    def name(self) -> str:
        return self.spec

    @abc.abstractmethod
    def num_examples(self, split: str) -> int:
        """Number of examples in one of SPLITS."""

    @abc.abstractmethod
    def as_dataset(self, split: str, *, shuffle_files: bool = False) -> tf.data.Dataset:
        """Unbatched `(uint8 [h, w, 3], int64 [])` pairs of one of SPLITS, in a fixed order."""

    def prepare(self) -> None:
        """Makes the task's data ready to read, once, before jobs read it side by side
        (a tfds task generates its dataset); data read as it lies needs nothing."""
        return None

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"task {self.spec}: unknown split {split!r}; expected one of {SPLITS}")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.spec!r}, num_classes={self.num_classes}, "
            f"group={self.group!r}, relation={self.relation!r}, nodes={self.nodes!r})"
        )


def check_relation(
    spec: str, relation: str | None, nodes: Sequence[str]
) -> tuple[str | None, tuple[str, ...]]:
    """A task's declared relation to the upstream and the nodes it names, checked: a
    matched task names >= 1 node, an unrelated or undeclared one names none."""
    if isinstance(nodes, str):
        raise ValueError(f"task {spec}: nodes must be a sequence of node names, got {nodes!r}")
    nodes = tuple(nodes)
    if relation is not None and relation not in RELATIONS:
        raise ValueError(f"task {spec}: relation {relation!r} is not one of {RELATIONS} or None")
    for node in nodes:
        if not isinstance(node, str) or not _NODE_NAME.match(node) or ".." in node.split("/"):
            raise ValueError(f"task {spec}: {node!r} is not a hierarchy node name")
    if len(set(nodes)) != len(nodes):
        raise ValueError(f"task {spec}: a node is named twice in {list(nodes)}")
    if relation == "matched" and not nodes:
        raise ValueError(f"task {spec}: a matched task names the upstream node(s) of its domain")
    if relation in (None, "unrelated") and nodes:
        raise ValueError(
            f"task {spec}: relation {relation!r} names no nodes, got {list(nodes)}; "
            "declare it matched or weak"
        )
    return relation, nodes


def to_rgb_uint8(image: tf.Tensor) -> tf.Tensor:
    """Grey images become three identical channels; every image ends as uint8 [h, w, 3]."""
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        image = tf.cast(tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 255.0), tf.uint8)
    channels = image.shape[-1]
    if channels == 1:
        image = tf.tile(image, [1, 1, 3])
    elif channels is None:
        image = tf.cond(
            tf.shape(image)[-1] == 1, lambda: tf.tile(image, [1, 1, 3]), lambda: image[..., :3]
        )
    elif channels != 3:
        image = image[..., :3]
    return tf.ensure_shape(image, [None, None, 3])


class TfdsTask(Task):
    """A task read from a tfds builder, with split strings derived from its split sizes.

    `local_source=True` marks builders that generate from files on this machine (the
    embedded suite): those are prepared on first use. Anything else is only prepared
    when `download=True`, and never from GCS unless `try_gcs=True`.
    """

    def __init__(
        self,
        spec: str,
        *,
        group: str,
        num_classes: int,
        tfds_name: str,
        split_fn: SplitFn,
        pair_fn: PairFn,
        data_dir: str | None = None,
        download: bool = False,
        try_gcs: bool = False,
        local_source: bool = False,
        relation: str | None = None,
        nodes: Sequence[str] = (),
    ):
        super().__init__(spec, num_classes, group, relation, nodes)
        self.tfds_name = tfds_name
        self._split_fn = split_fn
        self.pair_fn = pair_fn
        self._data_dir = data_dir
        self._download = download
        self._try_gcs = try_gcs
        self._local_source = local_source
        self._builder: tfds.core.DatasetBuilder | None = None

    @property
    def builder(self) -> tfds.core.DatasetBuilder:
        if self._builder is None:
            try:
                self._builder = tfds.builder(
                    self.tfds_name, data_dir=self._data_dir, try_gcs=self._try_gcs
                )
            except Exception as e:  # tfds raises several types for unknown names/versions.
                raise RuntimeError(
                    f"task {self.spec}: tfds cannot load {self.tfds_name!r} from data_dir "
                    f"{self._data_dir or tfds.core.constants.DATA_DIR!r}: {e}"
                ) from e
        return self._builder

    def prepare(self) -> None:
        """Generates (embedded) or downloads (only if allowed) the tfds data if missing."""
        builder = self.builder
        if builder.is_prepared():
            return
        if not (self._local_source or self._download):
            raise FileNotFoundError(
                f"task {self.spec}: tfds dataset {self.tfds_name!r} is not prepared in "
                f"{builder.data_dir!r}; pass download=True (--download) to fetch it"
            )
        logging.info("task %s: preparing %s in %s", self.spec, self.tfds_name, builder.data_dir)
        config = tfds.download.DownloadConfig(try_download_gcs=self._try_gcs)
        builder.download_and_prepare(download_config=config)

    def tfds_splits(self) -> dict[str, str]:
        """The tfds split string of each VTAB-1k split, from the prepared split sizes."""
        sizes = {name: info.num_examples for name, info in self.builder.info.splits.items()}
        if not sizes:
            raise FileNotFoundError(
                f"task {self.spec}: tfds dataset {self.tfds_name!r} has no split sizes in "
                f"{self.builder.data_dir!r}; is it prepared?"
            )
        splits = self._split_fn(sizes)
        missing = set(SPLITS) - set(splits)
        if missing:
            raise ValueError(f"task {self.spec}: split definition lacks {sorted(missing)}")
        return splits

    def num_examples(self, split: str) -> int:
        self._check_split(split)
        self.prepare()
        return self.builder.info.splits[self.tfds_splits()[split]].num_examples

    def as_dataset(self, split: str, *, shuffle_files: bool = False) -> tf.data.Dataset:
        self._check_split(split)
        self.prepare()
        ds = self.builder.as_dataset(split=self.tfds_splits()[split], shuffle_files=shuffle_files)
        pair_fn = self.pair_fn

        def to_pair(example):
            image, label = pair_fn(example)
            return to_rgb_uint8(image), tf.cast(label, tf.int64)

        return ds.map(to_pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def image_label(example: dict) -> tuple[tf.Tensor, tf.Tensor]:
    """The plain `image`/`label` pair of most tfds image classification datasets."""
    return example["image"], example["label"]


# Split definitions used by task_adaptation, parameterised by the dataset's split sizes.
# Slices are clamped to the split's size, which changes nothing for VTAB's datasets (all
# have >= 800 + 200 examples there) but lets the tiny embedded configs load.


def head_slice(split: str, sizes: Mapping[str, int], count: int, start: int = 0) -> str:
    stop = min(start + count, sizes[split])
    return f"{split}[{start}:{stop}]" if start else f"{split}[:{stop}]"


def splits_from_validation(sizes: Mapping[str, int]) -> dict[str, str]:
    """Datasets with a validation split: val200 comes from its head."""
    train800, val200 = head_slice("train", sizes, 800), head_slice("validation", sizes, 200)
    return {
        "train800": train800,
        "val200": val200,
        "train800val200": f"{train800}+{val200}",
        "test": "test",
    }


def splits_from_train_percent(percent: int, test: str = "test") -> SplitFn:
    """Datasets without validation: val200 is the head of train's last (100-percent)%."""

    def split_fn(sizes: Mapping[str, int]) -> dict[str, str]:
        cut = percent * sizes["train"] // 100
        train800, val200 = (
            head_slice("train", sizes, 800),
            head_slice("train", sizes, 200, start=cut),
        )
        return {
            "train800": train800,
            "val200": val200,
            "train800val200": f"{train800}+{val200}",
            "test": test,
        }

    return split_fn


def splits_from_train_only(train_percent: int, val_percent: int) -> SplitFn:
    """Datasets with a single split: train/val/test are consecutive percent slices of it."""

    def split_fn(sizes: Mapping[str, int]) -> dict[str, str]:
        total = sizes["train"]
        cut = train_percent * total // 100
        trainval = cut + val_percent * total // 100
        train800, val200 = (
            head_slice("train", sizes, 800),
            head_slice("train", sizes, 200, start=cut),
        )
        return {
            "train800": train800,
            "val200": val200,
            "train800val200": f"{train800}+{val200}",
            "test": f"train[{trainval}:]",
        }

    return split_fn

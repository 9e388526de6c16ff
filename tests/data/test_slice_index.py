"""A slice reads its own records: counted on a generated upstream of 20,000 tiny images.

Records read are counted where they leave the files: the slice index's reader
(``slice_index.read_records``) and, for a dataset without an index, every record tfds'
reader yields before the label filter (what every slice read before the index).
"""

import logging
import os
import time

import numpy as np
import pytest
import tensorflow as tf

from experts.data import pipelines, slice_index, upstream
from tests.bad_input import snapshot, user_files
from tests.data.tiny_upstream import TinyUpstreamConfig, label_name, prepare_tiny_upstream

# 200 labels of 100 images; ``small`` holds labels 0 and 199 (different groups): 1%.
# What is counted (records read against the slice's size) does not depend on the scale.
LARGE = TinyUpstreamConfig(name="n20k", groups=20, labels_per_group=10, images_per_label=100)
SMALL = TinyUpstreamConfig(name="n400", groups=2, labels_per_group=10, images_per_label=20)


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    start = time.time()
    builder = prepare_tiny_upstream(str(tmp_path_factory.mktemp("large")), LARGE, num_shards=4)
    print(
        f"built {builder.info.splits['train'].num_examples} records in {time.time() - start:.1f} s"
    )
    start = time.time()
    slice_index.build(builder, "train")  # as build_upstream does: not a slice's cost
    print(f"indexed them in {time.time() - start:.1f} s")
    return builder, upstream.load_info(builder)


@pytest.fixture
def small(tmp_path):
    builder = prepare_tiny_upstream(str(tmp_path), SMALL, num_shards=3)
    return builder, upstream.load_info(builder)


class Reads:
    """Records pulled from the shard files, by either reader."""

    def __init__(self, monkeypatch, builder):
        self.index_reads = 0
        self.tfds_reads = tf.Variable(0, dtype=tf.int64, trainable=False)
        read = slice_index.read_records

        def counted(path, offsets, lengths):
            self.index_reads += len(offsets)
            return read(path, offsets, lengths)

        monkeypatch.setattr(slice_index, "read_records", counted)
        as_dataset = builder.as_dataset

        def counted_record(ex):
            with tf.control_dependencies([self.tfds_reads.assign_add(1)]):
                return {k: tf.identity(v) for k, v in ex.items()}

        def counted_dataset(*args, **kwargs):
            return as_dataset(*args, **kwargs).map(counted_record)

        monkeypatch.setattr(builder, "as_dataset", counted_dataset)

    @property
    def count(self) -> int:
        return self.index_reads + int(self.tfds_reads.numpy())

    def reset(self) -> None:
        self.index_reads = 0
        self.tfds_reads.assign(0)


def _labels(ds) -> np.ndarray:
    return np.concatenate([b["label"] for b in ds.as_numpy_iterator()])


BATCH = 50  # a quarter of the 1% slice


def _slice(builder, info, expert="small", **kwargs):
    return pipelines.expert_slice(builder, info, expert, "train", BATCH, 2, **kwargs)


def test_a_one_percent_slice_reads_one_percent(large, monkeypatch):
    builder, info = large
    size = info.node_counts()["small"]
    assert size == 200 == builder.info.splits["train"].num_examples // 100
    reads = Reads(monkeypatch, builder)
    labels = _labels(_slice(builder, info, training=False))
    new = reads.count
    assert sorted(set(info.labels[i] for i in labels)) == [label_name(0), label_name(199)]
    assert len(labels) == size
    # The index reads exactly the slice's records: the bound is the slice itself. (The
    # filter path reads every record; its count is checked on a small upstream below.)
    assert new == size
    print(f"records read for the 1% slice of 20,000: {new} with the index")


def test_the_slice_is_cached_by_its_own_size(large, monkeypatch):
    builder, info = large
    size = info.node_counts()["small"]
    slice_bytes = size * 2 * 2 * 3
    split_bytes = builder.info.splits["train"].num_examples * 2 * 2 * 3
    # Between the two: a cache decided on the split's size would not hold the slice.
    monkeypatch.setattr(pipelines, "AUTO_CACHE_BYTES", (slice_bytes + split_bytes) // 2)
    reads = Reads(monkeypatch, builder)
    ds = _slice(builder, info, training=True, seed=3)
    for _ in ds.take(3 * size // BATCH + 1):  # three epochs and a batch
        pass
    assert reads.count == size  # the first epoch read it; later ones come from the cache
    monkeypatch.setattr(pipelines, "AUTO_CACHE_BYTES", slice_bytes)
    reads.reset()
    ds = _slice(builder, info, training=True, seed=3)
    for _ in ds.take(3 * size // BATCH + 1):
        pass
    # Not cached: every epoch reads the slice again (and the shuffle buffer reads ahead).
    assert reads.count > 3 * size


@pytest.mark.parametrize("expert,split", [("odd", "train"), ("group1", "train[25%:75%]")])
def test_index_reads_what_the_filter_kept(small, expert, split, monkeypatch):
    """Same records, DAG node or subtree, whole or sliced split, as without the index."""
    builder, info = small
    labels = np.flatnonzero(info.hierarchy.expert_label_mask([expert], info.labels)[0])

    def records():
        epoch_records, _ = pipelines._records(builder, info, split, False, 0, False, labels)
        ds = epoch_records(0)
        return sorted((int(ex["label"]), ex["image"].tobytes()) for ex in ds.as_numpy_iterator())

    with_index = records()
    assert slice_index.load(builder, "train") is not None
    monkeypatch.setattr(slice_index, "ensure", lambda builder, split: None)
    assert with_index == records()
    assert sorted({label for label, _ in with_index}) == labels.tolist()
    if split == "train":
        assert len(with_index) == info.node_counts()[expert]
    else:  # a slice of the split: some of the node's records, not all
        assert 0 < len(with_index) < info.node_counts()[expert]


def test_training_reads_are_seeded_and_shuffled(small):
    builder, info = small

    def first(seed):
        ds = pipelines.expert_slice(builder, info, "group1", "train", 50, 2, True, seed=seed)
        return [b["label"].tolist() for b in ds.take(4).as_numpy_iterator()]

    a, b, c = first(1), first(1), first(2)
    assert a == b and a != c
    assert len(set(a[0])) > 5  # mixed labels, not the index's label order


def test_an_older_dataset_gets_its_index_on_first_use(small, caplog):
    builder, info = small
    assert not slice_index.directory(builder, "train").exists()
    with caplog.at_level(logging.INFO, logger="experts.data.slice_index"):
        labels = _labels(_slice(builder, info, "group0", training=False))
    assert len(labels) == info.node_counts()["group0"]
    assert "indexing the train split" in caplog.text
    assert slice_index.load(builder, "train") is not None
    leftovers = [p.name for p in slice_index.directory(builder, "train").parent.iterdir()]
    assert leftovers == ["train"]  # no temporary directory left


def test_a_read_only_dataset_reads_the_whole_split(small, monkeypatch, caplog):
    builder, info = small

    def refuse(builder, split):
        raise PermissionError(13, "Permission denied", str(slice_index.directory(builder, split)))

    monkeypatch.setattr(slice_index, "build", refuse)
    reads = Reads(monkeypatch, builder)
    with caplog.at_level(logging.WARNING, logger="experts.data.slice_index"):
        labels = _labels(_slice(builder, info, "group0", training=False))
    assert len(labels) == info.node_counts()["group0"] and reads.count == 400
    [line] = [m for m in caplog.messages if "slice index" in m]
    assert "cannot write a slice index" in line and "read the whole split" in line


def test_a_stale_index_is_rebuilt_and_a_wrong_one_named(small):
    builder, info = small
    where = slice_index.build(builder, "train")
    meta = (where / "index.json").read_text()
    (where / "index.json").write_text(meta.replace('"shard_lengths": [', '"shard_lengths": [1, '))
    assert slice_index.load(builder, "train") is None  # describes other shards
    assert slice_index.ensure(builder, "train") is not None  # built again
    shard = slice_index.load(builder, "train").shard_paths[1]
    os.utime(shard, ns=(0, 0))  # as if the dataset was prepared again in place
    assert slice_index.load(builder, "train") is None
    assert slice_index.ensure(builder, "train") is not None
    offsets = np.load(where / "offset.npy")
    np.save(where / "offset.npy", offsets + 1)  # the shards changed under the index
    with pytest.raises(Exception, match=r"tfrecord-0000\d-of-00003: no record of \d+ bytes"):
        _labels(_slice(builder, info, "group0", training=False))


def test_a_directory_in_the_index_place_that_it_did_not_write_is_kept(small, caplog):
    builder, info = small
    mine = user_files(slice_index.directory(builder, "train"))
    kept = snapshot(mine)
    with caplog.at_level(logging.WARNING, logger="experts.data.slice_index"):
        labels = _labels(_slice(builder, info, "group0", training=False))
    assert len(labels) == info.node_counts()["group0"]  # read from the whole split
    assert snapshot(mine) == kept
    [line] = [m for m in caplog.messages if "slice index" in m]
    assert f"{mine} holds files experts.data.slice_index did not write" in line


def test_build_upstream_indexes_every_split(small, capsys):
    from experts.data import build_upstream

    builder, _ = small
    build_upstream.index_slices(builder)
    out = capsys.readouterr().out
    for split in ("train", "validation"):
        assert slice_index.load(builder, split) is not None
        assert f"slice index ({split}, " in out
    assert str(slice_index.directory(builder, "validation")) in out

"""Where every label's records lie in a prepared upstream's shards: a slice reads its own.

tfds writes a split as TFRecord shards whose records it shuffled by key hash, which is
what baseline B's reader relies on, and TFRecord has no index. This module adds one,
beside the dataset (``<dataset dir>/slice_index/<split>/``): for every record its label,
shard, position in the shard, byte offset and length, sorted by label, so that the
records of any set of labels (an expert's slice, a DAG node's labels anywhere in the
split) are found without reading the others, and read by seeking to each one.

The index costs one pass over the split's records, once per prepared dataset: the
upstream build makes it, and a dataset prepared before it existed gets it on first use
(written to a temporary directory, then renamed into place, so concurrent jobs are
safe). Where it cannot be written (a read-only data_dir) or the files are not TFRecord,
``ensure`` says so in one line and returns None: slices then read the whole split.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from fanout import files

_log = logging.getLogger(__name__)
# Marks the index directories this module writes: the only ones it replaces.
OWNER = "experts.data.slice_index"

FORMAT = 1
INDEX_DIR = "slice_index"
# TFRecord framing around a record's bytes: length (8) and its CRC (4) before, CRC after.
_HEADER_BYTES = 12
_FRAME_BYTES = 16
# Records read by one call into Python: large enough that the call's cost vanishes, small
# enough that a training read visits many places of a shard in a shuffled order.
CHUNK_RECORDS = 256
_COLUMNS = ("shard", "position", "offset", "length")


class SliceIndex:
    """One split's index: ``starts[l]:starts[l + 1]`` are label ``l``'s rows of the
    columns (memory-mapped, so a slice loads only its own rows)."""

    def __init__(self, directory: Path, shard_paths: Sequence[str]):
        self.directory = directory
        self.shard_paths = tuple(shard_paths)
        self.starts = np.load(directory / "starts.npy")
        self.columns = {c: np.load(directory / f"{c}.npy", mmap_mode="r") for c in _COLUMNS}

    def rows(self, label_ids: Sequence[int]) -> dict[str, np.ndarray]:
        """The labels' records, ordered by shard and position (the order reads go in)."""
        pieces = [np.arange(self.starts[i], self.starts[i + 1]) for i in label_ids]
        rows = np.concatenate(pieces) if pieces else np.zeros([0], np.int64)
        out = {c: np.asarray(col[rows]) for c, col in self.columns.items()}
        order = np.lexsort((out["position"], out["shard"]))
        return {c: v[order] for c, v in out.items()}


def directory(builder, split: str) -> Path:
    return Path(os.fspath(builder.data_dir)) / INDEX_DIR / split


def _shard_files(builder, split: str) -> list[str]:
    return [os.path.basename(f) for f in builder.info.splits[split].filenames]


def _expected(builder, split: str) -> dict:
    """What an index of the split as it is now records: a dataset prepared again in the
    same directory (new files, other sizes or times) has a stale index."""
    split_info = builder.info.splits[split]
    names = _shard_files(builder, split)
    stats = [os.stat(os.path.join(os.fspath(builder.data_dir), n)) for n in names]
    return {
        "format": FORMAT,
        "shard_files": names,
        "shard_lengths": [int(n) for n in split_info.shard_lengths],
        "shard_bytes": [st.st_size for st in stats],
        "shard_mtimes_ns": [st.st_mtime_ns for st in stats],
    }


def load(builder, split: str) -> SliceIndex | None:
    """The split's index, or None when there is none or it describes other shards (the
    dataset was prepared again)."""
    where = directory(builder, split)
    try:
        meta = json.loads((where / "index.json").read_text())
    except FileNotFoundError:
        return None
    if meta != _expected(builder, split):
        return None
    paths = [os.path.join(os.fspath(builder.data_dir), f) for f in meta["shard_files"]]
    return SliceIndex(where, paths)


def ensure(builder, split: str) -> SliceIndex | None:
    """The split's index, built now if missing or stale; None (with a one-line warning)
    if it cannot be: the caller then reads the whole split."""
    base = split.split("[", 1)[0]
    if "+" in split or base not in builder.info.splits:
        return None  # combined splits are read whole; tfds names unknown ones itself
    index = load(builder, base)
    if index is not None:
        return index
    if "://" in os.fspath(builder.data_dir):
        _log.warning(
            "%s: no slice index on remote storage; slices read the whole split", builder.data_dir
        )
        return None
    if builder.info.file_format != tfds.core.FileFormat.TFRECORD:
        _log.warning(
            "%s: %s files have no slice index; slices read the whole split",
            builder.data_dir,
            builder.info.file_format.value,
        )
        return None
    try:
        build(builder, base)
    except (OSError, files.NotOwned) as e:
        _log.warning(
            "%s: cannot write a slice index (%s); slices read the whole split", builder.data_dir, e
        )
        return None
    return load(builder, base)


def _scan(paths: Sequence[str], shard_lengths: Sequence[int]) -> dict[str, np.ndarray]:
    """Label, shard, position, offset and length of every record of the shards, in one
    pass; shards are read in parallel, each in file order."""
    spec = {"label": tf.io.FixedLenFeature([], tf.int64)}
    path_table = tf.constant(list(paths))

    def shard_batches(shard):
        records = tf.data.TFRecordDataset(path_table[shard]).batch(4096)
        return records.map(
            lambda s: (tf.io.parse_example(s, spec)["label"], tf.strings.length(s), shard)
        )

    shards = tf.data.Dataset.range(len(paths)).interleave(
        shard_batches, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    labels, lengths = [[] for _ in paths], [[] for _ in paths]
    for label, length, shard in shards.as_numpy_iterator():  # per shard in file order
        labels[shard].append(label)
        lengths[shard].append(length)
    out = {c: [] for c in ("label", *_COLUMNS)}
    for shard in range(len(paths)):
        length = np.concatenate(lengths[shard] or [np.zeros([0], np.int32)]).astype(np.int64)
        if len(length) != shard_lengths[shard]:
            raise ValueError(
                f"{paths[shard]}: {len(length)} records, but the dataset's info says "
                f"{shard_lengths[shard]}; prepare the dataset again"
            )
        out["label"].append(np.concatenate(labels[shard] or [np.zeros([0], np.int64)]))
        out["shard"].append(np.full(len(length), shard, np.int32))
        out["position"].append(np.arange(len(length), dtype=np.int32))
        out["offset"].append(np.cumsum(length + _FRAME_BYTES) - (length + _FRAME_BYTES))
        out["length"].append(length.astype(np.int32))
    return {c: np.concatenate(v) for c, v in out.items()}


def build(builder, split: str) -> Path:
    """Writes the split's index (one pass over its records) and returns its directory."""
    expected = _expected(builder, split)
    files.check_replaceable(directory(builder, split), OWNER)  # before the pass
    num_labels = builder.info.features["label"].num_classes
    root = Path(os.fspath(builder.data_dir))
    paths = [os.fspath(root / f) for f in expected["shard_files"]]
    _log.info("%s: indexing the %s split's records by label (one pass)", root, split)
    scan = _scan(paths, expected["shard_lengths"])
    if scan["label"].size and not 0 <= scan["label"].min() <= scan["label"].max() < num_labels:
        raise ValueError(f"{root}/{split}: a record's label is outside [0, {num_labels})")
    order = np.argsort(scan["label"], kind="stable")  # stable: shard and position stay sorted
    starts = np.searchsorted(scan["label"][order], np.arange(num_labels + 1))
    target = directory(builder, split)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = files.make_temp_dir(f".{split}.", target.parent, owner=OWNER)
    try:
        np.save(tmp / "starts.npy", starts.astype(np.int64))
        for column in _COLUMNS:
            np.save(tmp / f"{column}.npy", scan[column][order])
        files.write_json(tmp / "index.json", expected)  # last: it marks the index complete
        if load(builder, split) is not None:  # a concurrent job's, complete: keep it
            return target
        try:
            # A stale index goes whole, but only one this module wrote (fanout.files).
            files.replace_dir(tmp, target, OWNER)
        except OSError:
            if load(builder, split) is None:  # not a concurrent job's complete index
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_records(path: bytes, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The serialized records at ``offsets`` of one local TFRecord shard, as an object
    array: one ``pread`` each, so exactly their frames are read."""
    out = np.empty(len(offsets), object)
    fd = os.open(path, os.O_RDONLY)
    try:
        for i, (offset, length) in enumerate(zip(offsets.tolist(), lengths.tolist(), strict=True)):
            frame = os.pread(fd, _HEADER_BYTES + length, offset)
            if len(frame) < _HEADER_BYTES + length or int.from_bytes(frame[:8], "little") != length:
                raise ValueError(
                    f"{path.decode()}: no record of {length} bytes at byte {offset}; the "
                    f"slice index beside it is out of date (delete its {INDEX_DIR}/)"
                )
            out[i] = frame[_HEADER_BYTES:]
    finally:
        os.close(fd)
    return out


def select(index: SliceIndex, builder, split: str, label_ids: Sequence[int]) -> dict:
    """The labels' rows within ``split``, which may be a slice of the indexed split
    (``train[:50%]``): tfds' own file instructions say which positions it spans."""
    rows = index.rows(label_ids)
    shard_of = {os.path.basename(p): i for i, p in enumerate(index.shard_paths)}
    keep = []
    for instruction in builder.info.splits[split].file_instructions:
        # Rows are sorted by shard, then position: each instruction is one row range.
        shard = shard_of[os.path.basename(instruction.filename)]
        lo, hi = np.searchsorted(rows["shard"], [shard, shard + 1])
        position = rows["position"][lo:hi]
        skip, end = np.searchsorted(
            position, [instruction.skip, instruction.skip + instruction.take]
        )
        keep.append(np.arange(lo + skip, lo + end))
    chosen = np.concatenate(keep) if keep else np.zeros([0], np.int64)
    return {c: v[chosen] for c, v in rows.items()}


def dataset(index: SliceIndex, rows: dict, training: bool, seed) -> tf.data.Dataset:
    """The serialized records of ``rows`` (from ``select``), one string vector per chunk
    of one shard's records in file order (parse them a chunk at a time); the chunks come
    in an order seeded by ``seed`` (an int or an int64 tensor) when ``training`` (like
    tfds' shuffle_files), else in file order. Read again, the order is the same: training
    pipelines draw each epoch's seed from the epoch (data/streams.py)."""
    shard = rows["shard"]
    cuts = np.flatnonzero(np.diff(shard)) + 1 if len(shard) else np.zeros([0], np.int64)
    bounds = []
    for start, end in zip(np.r_[0, cuts], np.r_[cuts, len(shard)], strict=True):
        bounds += list(range(int(start), int(end), CHUNK_RECORDS))
    bounds = np.asarray([*bounds, len(shard)], np.int64)
    paths = [p.encode() for p in index.shard_paths]

    def read_chunk(chunk):
        start, end = bounds[chunk], bounds[chunk + 1]
        # Looked up at call time, so a test can count what is read.
        return read_records(
            paths[shard[start]], rows["offset"][start:end], rows["length"][start:end]
        )

    chunks = tf.data.Dataset.range(len(bounds) - 1)
    if training:
        chunks = chunks.shuffle(len(bounds), seed=seed, reshuffle_each_iteration=False)
    records = chunks.map(
        lambda c: tf.numpy_function(read_chunk, [c], tf.string, stateful=False),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return records.map(lambda r: tf.ensure_shape(r, [None]))

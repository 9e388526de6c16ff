"""The records a pipeline reads (data/pipelines.py): a slice through the slice index, or
the split streamed and filtered by label, in a seeded file order or in file order."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from experts.data import slice_index

# A larger slice streams the split and filters it: that reads at most twice its own
# records, in order, which is the cheaper read where a seek costs more than a record
# (disks, network file systems); on a local SSD the index is faster even then.
INDEX_MAX_FRACTION = 0.5


def reader(builder, info, split: str, training: bool, labels: np.ndarray | None):
    """``(file order seed or None -> the records of labels, their exact number, their
    encoded bytes)``. The number is exact because a training epoch's end depends on it;
    the bytes (which decide a cache) are exact from the index, else estimated from the
    label counts."""
    split_info = builder.info.splits[split]
    base = split.split("[", 1)[0]
    fraction = 1.0
    if labels is not None:
        counts = info.counts(split)
        fraction = sum(counts[info.labels[i]] for i in labels) / max(1, sum(counts.values()))
    index = slice_index.ensure(builder, split) if fraction <= INDEX_MAX_FRACTION else None
    if index is not None:
        rows = slice_index.select(index, builder, split, labels)
        # Parsed a chunk at a time: per-record parsing would cost more than the reads.
        spec = {
            k: tf.io.FixedLenFeature(v.shape, v.tf_dtype)
            for k, v in builder.info.features.get_serialized_info().items()
            if k in ("image", "label")
        }

        def read_indexed(seed):
            chunks = slice_index.dataset(index, rows, seed is not None, seed)
            return chunks.map(lambda r: tf.io.parse_example(r, spec), tf.data.AUTOTUNE).unbatch()

        return read_indexed, len(rows["length"]), int(rows["length"].sum())
    kept = None
    if labels is not None:
        kept = np.zeros(len(info.labels), bool)
        kept[np.asarray(labels, np.int64)] = True
        kept = tf.constant(kept)

    def read(seed):
        # Not reshuffled when read again (a cache filled late, an expert mix's next pass):
        # the order follows from the seed alone.
        read_config = tfds.ReadConfig(
            shuffle_seed=seed, shuffle_reshuffle_each_iteration=False, try_autocache=False
        )
        ds = builder.as_dataset(
            split=split,
            shuffle_files=seed is not None,
            read_config=read_config,
            decoders={"image": tfds.decode.SkipDecoding()},
        )
        ds = ds.map(_image_and_label)
        if kept is not None:
            ds = ds.filter(lambda ex: kept[tf.cast(ex["label"], tf.int32)])
        return ds

    if labels is None:
        examples = split_info.num_examples
    elif split == base:
        examples = sum(counts[info.labels[i]] for i in labels)
    elif training:  # a sliced split's label counts are its whole split's: count it
        examples = int(read(None).reduce(np.int64(0), lambda n, _: n + 1))
    else:
        examples = round(split_info.num_examples * fraction)
    return read, examples, round(split_info.num_bytes * fraction)


def _image_and_label(ex: dict) -> dict:
    return {"image": ex["image"], "label": ex["label"]}

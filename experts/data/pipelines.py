"""tf.data input pipelines over a prepared upstream builder (paper, sections 4.2-4.3, 5).

Every pipeline yields batches of dicts with ``image`` (float32 ``[b, s, s, 3]`` in [0, 1],
the models' input range) and ``label`` (the class id), plus:

* ``whole``            ``targets``: multi-hot over all hierarchy nodes (label + ancestors),
                       for the baseline B's sigmoid head;
* ``expert_slice``     the same, restricted to one expert's slice (full experts fine-tune B);
* ``expert_mix``       the same plus ``expert`` (int32): each batch mixes every expert's
                       slice in equal shares, so all adapter experts train in parallel with
                       hard-coded routing;
* ``expert_prediction``  ``expert_targets``: multi-hot over the experts whose slice holds the
                       image, for the expert prediction network (EPN).

Training pipelines repeat forever, shuffle with ``seed`` and augment (``Augment``, set by
``config.data.augment``) by a random crop resized back to ``image_size`` and, for natural
images, a horizontal flip: ``INCEPTION`` as BiT upstream, ``GLYPHS`` (larger crops, no
flip: a mirrored glyph is another glyph) for the embedded upstream. What they yield is a
pure function of ``seed`` and ``start``, the examples already trained on: a resumed run
passes its step times the global batch and continues the stream the interrupted run was
on (``data/streams.py``). Evaluation pipelines read each example once, in order, only resized.

A slice reads its own records, not the split's (``data/slice_index.py``). The shards stay
as tfds wrote them, shuffled by key hash, so B's stream of the whole split is unchanged:
an index beside them (written once per prepared dataset, by the upstream build or on first
use) holds every record's label, shard and byte offset, and a slice seeks to each of its
records, in chunks of one shard's records in file order, the chunks in a seeded order that
changes every epoch. That holds at ImageNet-21k scale (13M records, thousands of shards):
a slice is any set of labels, so a DAG node whose labels lie anywhere costs its own records,
and the index is 20 bytes a record, memory-mapped. The alternatives had worse trade-offs:
records grouped by node (contiguous ranges) would have made B's shuffle buffer see a few
labels at a time; ArrayRecord has random access but tfds' ``as_dataset`` cannot read it,
which would have moved B's reader into Python. The price is one read call (a seek) per
record, so a slice of more than ``reading.INDEX_MAX_FRACTION`` of the split streams the split
instead and filters labels before decoding images, reading at most twice its records. A
prepared dataset whose index cannot be written (read-only, remote) is read that way too,
with a one-line warning. Whatever is read, a cache is decided on the size of what the
pipeline holds (a slice's pixels or encoded bytes), not on the whole split's.

Two execution paths, same semantics. When the builder's images have one static shape (the
embedded upstream: 32x32), images are decoded once, cached as uint8 and augmented a whole
batch at a time (``preprocess_batch``): per-example tf.data work is what limits a 2-core
machine (the per-example path runs at about twice the model's training speed, so it takes
a third of the CPU), and the batched path removes most of it. Images of varying sizes
(a user's image folder) take the per-example path (``preprocess``), cropping at full
resolution before resizing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from experts.data import reading, streams, upstream
from experts.data.augment import GLYPHS, Augment, preprocess, preprocess_batch

SHUFFLE_BUFFER = 10_000
# The random streams a training pipeline draws from (``streams.key``).
_FILES, _BUFFER, _AUGMENT, _COPIES, _SPREAD = range(5)


# What a pipeline reads (a slice or the split) is cached in memory after the first pass
# when it holds less than this: decoded pixels when images share a shape, else encoded.
AUTO_CACHE_BYTES = 1 << 30


def open_upstream(
    name: str = "embedded_upstream/32px", data_dir: str | None = None
) -> tuple[tfds.core.DatasetBuilder, upstream.UpstreamInfo]:
    """A prepared upstream builder by tfds name, with its labels and hierarchy."""
    import experts.data.builders  # noqa: F401  (registers the builders with tfds)

    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        how = (
            "--config.image_folder=<your folder> "
            if name.startswith("image_folder_upstream")
            else ""
        )
        raise FileNotFoundError(
            f"{name} is not prepared in {builder.data_dir}; build it first, e.g. "
            f"python -m experts.data.build_upstream {how}--config.data_dir={data_dir}"
        )
    return builder, upstream.load_info(builder)


def static_image_shape(builder) -> tuple[int, int, int] | None:
    """The builder's image shape when every image has it (e.g. ``(32, 32, 3)``), else
    None; decides between the batched and the per-example path."""
    shape = tuple(builder.info.features["image"].shape)
    return shape if all(isinstance(d, int) for d in shape) else None


def _decode_static(ds: tf.data.Dataset, shape: tuple[int, int, int]) -> tf.data.Dataset:
    def decode(ex):
        image = tf.io.decode_image(ex["image"], channels=3, expand_animations=False)
        image.set_shape(shape)
        return {**ex, "image": image}

    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _tables(info: upstream.UpstreamInfo, experts: Sequence[str] = ()) -> _Tables:
    """``_Tables`` built once per (info, experts): checking the experts costs seconds
    on the embedded hierarchy, and full experts build several pipelines each."""
    return info.derived(("tables", tuple(experts)), lambda: _Tables(info, experts))


class _Tables:
    """Label-indexed lookups as constants: targets are gathered, never computed in Python."""

    def __init__(self, info: upstream.UpstreamInfo, experts: Sequence[str] = ()):
        closure = info.hierarchy.closure_matrix(info.labels)
        self.num_nodes = closure.shape[1]
        # Ragged node ids per label: a dense [labels, nodes] table would be labels x nodes
        # floats (hundreds of MB at ImageNet-21k scale).
        rows = [np.flatnonzero(r) for r in closure]
        self.node_ids = tf.RaggedTensor.from_row_lengths(
            np.concatenate(rows).astype(np.int32), [len(r) for r in rows]
        )
        self.num_experts = len(experts)
        if experts:
            info.check_experts(experts)
            mask = info.hierarchy.expert_label_mask(experts, info.labels).T  # [labels, experts]
            self.expert_mask = tf.constant(mask)

    def targets(self, label: tf.Tensor) -> tf.Tensor:
        ids = self.node_ids[tf.cast(label, tf.int32)]
        return tf.scatter_nd(ids[:, None], tf.ones_like(ids, tf.float32), [self.num_nodes])

    def batch_targets(self, labels: tf.Tensor) -> tf.Tensor:
        """``targets`` for a batch of labels: ``[b, num_nodes]``."""
        ids = tf.gather(self.node_ids, tf.cast(labels, tf.int32))
        index = tf.stack([tf.cast(ids.value_rowids(), tf.int32), ids.flat_values], axis=1)
        shape = tf.stack([tf.size(labels), self.num_nodes])
        return tf.scatter_nd(index, tf.ones([tf.shape(index)[0]], tf.float32), shape)

    def expert_targets(self, label: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.expert_mask[tf.cast(label, tf.int32)], tf.float32)


# -- datasets --------------------------------------------------------------------------


def _records(
    builder,
    info: upstream.UpstreamInfo,
    split: str,
    training: bool,
    seed: int,
    cache: bool | str,
    labels: np.ndarray | None = None,
) -> tuple[Callable[[tf.Tensor], tf.data.Dataset], int]:
    """``(epoch -> that epoch's records, records per epoch)``: ``{"image", "label": int64}``,
    only the records of ``labels`` (label ids; None: all). A slice of at most
    ``reading.INDEX_MAX_FRACTION`` of the split reads its records through the slice index;
    otherwise the split is read and filtered by label before any image is decoded. Images
    stay encoded unless the builder's images share a static shape; then they are decoded
    uint8, so a cache holds pixels and later epochs never decode again.

    Training reads each epoch's files (or index chunks) in an order seeded by (seed,
    epoch), unless the records are cached: then they are read once, in the seed's order,
    and each epoch's shuffle buffer reorders them. Evaluation reads in file order."""
    read, examples, encoded_bytes = reading.reader(builder, info, split, training, labels)
    shape = static_image_shape(builder)

    def decoded(ds):
        return _decode_static(ds, shape) if shape is not None else ds

    if cache == "auto":
        # Decided on what this pipeline holds, the slice, not on the whole split.
        size = examples * int(np.prod(shape)) if shape else encoded_bytes
        cache = size < AUTO_CACHE_BYTES
    if not training or cache:
        ds = decoded(read(seed if training else None))
        ds = ds.cache() if cache else ds
        return (lambda epoch: ds), examples
    return (lambda epoch: decoded(read(streams.shuffle_seed(seed, _FILES, epoch)))), examples


def _finish(
    ds: tf.data.Dataset,
    tables: _Tables,
    batch_size: int,
    image_size: int,
    training: bool,
    seed: int,
    augment: Augment,
    start: int = 0,
) -> tf.data.Dataset:
    """Decodes and augments, adds targets and batches the examples ``ds``, which start at
    example ``start`` of the training stream (``data/streams.py``)."""
    if start % batch_size:
        raise ValueError(f"start={start} is not a multiple of the batch size {batch_size}")
    # Stateless seed pairs by the examples' (per-example path) or batches' (batched path)
    # positions in the training stream.
    if ds.element_spec["image"].dtype == tf.uint8:  # decoded, same-sized: batched path
        ds = ds.batch(batch_size, drop_remainder=training)

        def transform_batch(batch, pair):
            out = dict(batch)
            out["image"] = preprocess_batch(batch["image"], image_size, training, pair, augment)
            out["targets"] = tables.batch_targets(batch["label"])
            return out

        keys = streams.keys(seed, _AUGMENT, start // batch_size)
        ds = tf.data.Dataset.zip((ds, keys)).map(transform_batch, tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    def transform(ex, pair):
        out = dict(ex)
        out["image"] = preprocess(ex["image"], image_size, training, pair, augment)
        out["targets"] = tables.targets(ex["label"])
        return out

    ds = tf.data.Dataset.zip((ds, streams.keys(seed, _AUGMENT, start)))
    ds = ds.map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)


def _examples(epoch_records, examples, training, seed, start) -> tf.data.Dataset:
    """The records as a training stream from ``start`` on, or read once (evaluation)."""
    if not training:
        return epoch_records(0)

    def shuffle(ds, epoch):
        seed_of_epoch = streams.shuffle_seed(seed, _BUFFER, epoch)
        return ds.shuffle(SHUFFLE_BUFFER, seed_of_epoch, reshuffle_each_iteration=False)

    return streams.epochs(epoch_records, examples, start, shuffle)


def whole(
    builder,
    info: upstream.UpstreamInfo,
    split: str,
    batch_size: int,
    image_size: int,
    training: bool,
    seed: int = 0,
    augment: Augment = GLYPHS,
    cache: bool | str = "auto",
    start: int = 0,
) -> tf.data.Dataset:
    """The whole split with multi-hot ``targets`` over all nodes: baseline B's data."""
    tables = _tables(info)
    records, examples = _records(builder, info, split, training, seed, cache)
    ds = _examples(records, examples, training, seed, start)
    return _finish(ds, tables, batch_size, image_size, training, seed, augment, start)


def expert_slice(
    builder,
    info: upstream.UpstreamInfo,
    expert: str,
    split: str,
    batch_size: int,
    image_size: int,
    training: bool,
    seed: int = 0,
    augment: Augment = GLYPHS,
    cache: bool | str = "auto",
    start: int = 0,
) -> tf.data.Dataset:
    """The images of one expert's slice (its node and every node below), with the same
    multi-hot ``targets`` as ``whole``: a full expert fine-tunes B, head included."""
    tables = _tables(info, [expert])
    # The cache holds the slice, not the split: a small slice's later epochs then cost
    # its own size instead of another pass over every record.
    labels = np.flatnonzero(info.hierarchy.expert_label_mask([expert], info.labels)[0])
    records, examples = _records(builder, info, split, training, seed, cache, labels)
    ds = _examples(records, examples, training, seed, start)
    return _finish(ds, tables, batch_size, image_size, training, seed, augment, start)


def expert_mix(
    builder,
    info: upstream.UpstreamInfo,
    experts: Sequence[str],
    split: str,
    batch_size: int,
    image_size: int,
    training: bool,
    seed: int = 0,
    augment: Augment = GLYPHS,
    cache: bool | str = "auto",
    start: int = 0,
) -> tf.data.Dataset:
    """Every expert's slice with its ``expert`` id (index into ``experts``), for training
    all adapter experts at once with hard-coded routing.

    Training gives every expert an equal share of the examples whatever its slice size (the
    paper trains all experts for the same number of steps). It makes one pass over the
    shuffled records, not one per expert: a record in expert e's slice is emitted for e
    ``N / (E * |D_e|)`` times in expectation (N records, E experts; the fraction by a
    seeded coin), so each pass yields about N examples, N / E per expert. Copies are spread
    by a second shuffle and augmented independently. An epoch is the first N examples a
    pass emits (the pass's last records, or the next pass's first, make up the
    difference), so that where a resumed run's epoch ends follows from its step.
    Evaluation emits every (image, expert) pair once, in record order."""
    experts = list(experts)
    if not experts:
        raise ValueError("expert_mix needs at least one expert")
    tables = _tables(info, experts)
    records, examples = _records(builder, info, split, training, seed, cache)
    emit = _mix_emitter(tables, _copy_rates(info, experts, split), training)

    @tf.autograph.experimental.do_not_convert  # builds datasets, nothing to convert
    def epoch(number):
        ds = records(number)
        if training:
            seed_of_pass = streams.shuffle_seed(seed, _BUFFER, number)
            ds = ds.shuffle(SHUFFLE_BUFFER, seed_of_pass, reshuffle_each_iteration=False).repeat()
        copies = tf.data.Dataset.counter().map(lambda i: streams.key(seed, _COPIES, number, i))
        ds = tf.data.Dataset.zip((ds, copies)).flat_map(emit)
        if not training:
            return ds
        spread = streams.shuffle_seed(seed, _SPREAD, number)
        return ds.take(examples).shuffle(
            SHUFFLE_BUFFER // 4, spread, reshuffle_each_iteration=False
        )

    ds = streams.epochs(epoch, examples, start) if training else epoch(0)
    return _finish(ds, tables, batch_size, image_size, training, seed, augment, start)


def _copy_rates(info: upstream.UpstreamInfo, experts: list[str], split: str) -> tf.Tensor:
    """Expected copies per pass of one record of each expert's slice: N / (E * |D_e|)."""
    counts = info.node_counts(split)
    sizes = np.asarray([counts[e] for e in experts], np.float64)
    if (sizes == 0).any():
        empty = experts[int(np.flatnonzero(sizes == 0)[0])]
        raise ValueError(f"expert {empty!r} has no images in split {split!r}")
    return tf.cast(float(sum(info.counts(split).values())) / len(experts) / sizes, tf.float32)


def _mix_emitter(tables, rate: tf.Tensor, training: bool):
    """``emit(example, key)``: the example once per expert it is emitted for (in
    training, a seeded coin rounds each expert's rate; in evaluation, once per expert
    whose slice holds it), each copy with its ``expert`` id."""
    expert_ids = tf.range(tf.size(rate), dtype=tf.int32)

    def emit(ex, pair):
        member = tables.expert_mask[tf.cast(ex["label"], tf.int32)]
        if training:
            u = tf.random.stateless_uniform(tf.shape(rate), seed=pair)
            copies = tf.floor(rate) + tf.cast(u < rate - tf.floor(rate), tf.float32)
            copies = tf.where(member, tf.cast(copies, tf.int32), 0)
        else:
            copies = tf.cast(member, tf.int32)
        ids = tf.repeat(expert_ids, copies)
        n = tf.size(ids)
        image = tf.repeat(ex["image"][None], n, axis=0)  # encoded bytes or pixels
        return tf.data.Dataset.from_tensor_slices(
            {"image": image, "label": tf.fill([n], ex["label"]), "expert": ids}
        )

    return emit


def expert_prediction(
    builder,
    info: upstream.UpstreamInfo,
    experts: Sequence[str],
    split: str,
    batch_size: int,
    image_size: int,
    training: bool,
    seed: int = 0,
    augment: Augment = GLYPHS,
    cache: bool | str = "auto",
    keep_unassigned: bool = False,
    start: int = 0,
) -> tf.data.Dataset:
    """Images with ``expert_targets``, float32 ``[len(experts)]``: 1 for every expert whose
    slice holds the image (slices overlap, so several may be 1). This is the hard-coded
    routing the EPN learns to predict. Images in no expert's slice are dropped unless
    ``keep_unassigned`` (they then have all-zero targets)."""
    experts = list(experts)
    if not experts:
        raise ValueError("expert_prediction needs at least one expert")
    tables = _tables(info, experts)

    assigned = np.flatnonzero(info.hierarchy.expert_label_mask(experts, info.labels).any(0))
    records, examples = _records(
        builder, info, split, training, seed, cache, None if keep_unassigned else assigned
    )
    ds = _examples(records, examples, training, seed, start)
    ds = ds.map(lambda ex: {**ex, "expert_targets": tables.expert_targets(ex["label"])})
    return _finish(ds, tables, batch_size, image_size, training, seed, augment, start)

"""Training streams that resume where they stopped: what a training pipeline yields is a
pure function of its seed and ``start``, the examples a run has already trained on.

Epoch after epoch, each epoch is read and shuffled with seeds derived from (seed,
epoch); a pipeline started later begins at the epoch ``start`` falls in and skips to its
place there; augmentation and other per-example draws take stateless keys of (seed,
stream, position). A resumed run passes its step times the global batch
(training/loop.py) and trains on exactly what the uninterrupted run would have.

Why not checkpoint the tf.data iterator instead: it would save every shuffle buffer's
images with every checkpoint (GBs per input pipeline at ImageNet-21k scale, 10,000
encoded images each), and tf.data cannot save the slice index's reads
(tf.numpy_function). Skipping costs at most one epoch's reads, once per resume (in a
cached pipeline, memory reads only), and nothing while training.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

_EPOCHS = 1 << 62  # a training stream never ends
# tf.data combines a shuffle's seed with the graph-level seed, and cannot take a tensor
# seed when that is 0 (tf.random.set_seed(0), as a config's seed 0 does): an epoch's
# datasets are built under this graph seed instead, so their seeds are a function of
# (seed, epoch) alone.
_GRAPH_SEED = 1


def key(seed: int, stream: int, *positions) -> tf.Tensor:
    """The stateless seed pair of random ``stream`` at ``positions`` (epoch, element)."""
    pair = tf.constant([seed, stream], tf.int64)
    for position in positions:
        pair = tf.random.experimental.stateless_fold_in(pair, tf.cast(position, tf.int64))
    return pair


def shuffle_seed(seed: int, stream: int, epoch) -> tf.Tensor:
    """A tf.data shuffle's seed for ``epoch`` of random ``stream``."""
    pair = key(seed, stream, epoch)
    return tf.random.stateless_uniform([], pair, minval=None, maxval=None, dtype=tf.int64)


def keys(seed: int, stream: int, first: int) -> tf.data.Dataset:
    """Seed pairs for a stream's elements from position ``first`` on: (a number drawn
    from (seed, stream), the position), one cheap op per element."""
    drawn = tf.random.stateless_uniform(
        [], key(seed, stream), minval=None, maxval=None, dtype=tf.int64
    )
    return tf.data.Dataset.counter(first).map(lambda i: tf.stack([drawn, i]))


def epochs(
    epoch_examples: Callable[[tf.Tensor], tf.data.Dataset],
    examples: int,
    start: int,
    shuffle: Callable[[tf.data.Dataset, tf.Tensor], tf.data.Dataset] | None = None,
) -> tf.data.Dataset:
    """The training stream from example ``start`` on: ``epoch_examples(epoch)``, exactly
    ``examples`` each, for every epoch, each passed through ``shuffle(ds, epoch)``."""
    if examples <= 0:
        raise ValueError("the training split holds no examples of this pipeline's labels")
    first, offset = divmod(start, examples)

    @tf.autograph.experimental.do_not_convert  # builds datasets (tfds), nothing to convert
    def epoch(number):
        tf.random.set_seed(_GRAPH_SEED)  # this function's graph only
        ds = epoch_examples(number)
        if shuffle is not None:
            ds = shuffle(ds, number)
        # Another count would move every later epoch's start: fail instead.
        return ds.apply(tf.data.experimental.assert_cardinality(examples))

    return tf.data.Dataset.range(first, _EPOCHS).flat_map(epoch).skip(offset)

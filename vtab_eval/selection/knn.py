"""Performance proxy: leave-one-out k-nearest-neighbour accuracy on each expert's
embedding of the task's training images (paper, section 5; k=1, Euclidean).

Along a query row `a`, `|a - b|^2 = |a|^2 - 2 (a.b - |b|^2 / 2)` and `|a|^2` is
constant, so the nearest points are those with the largest score `a.b - |b|^2 / 2`:
a matmul with a bias add, then an argmax or top_k, and no distance is ever formed (at
D=128 the elementwise passes that would take cost as much as the matmul). Scores come
in blocks of `chunk_elements` (~16M: 64 MB in float32), so memory is a block rather
than `n x n`. For k=1 the blocks tile the symmetric matrix of dot products: each
off-diagonal block's matmul serves its rows and, transposed, its columns, which halves
the matmul work (the cost at large D); k > 1 takes blocks of whole rows and top_k.

Features are centred first, which keeps the expansion's cancellation error small in
float32 (`float64` is available for exactness). The shift is the mean rounded to a
multiple of a power of two near 1/64 of each column's range: it removes an offset as
well as the exact mean does, yet data on a coarse grid (small integers, the tests'
points) stays on a coarse grid, whose scores are exact, so points at exactly equal
distances get exactly equal scores.

Leave-one-out: each point's own score is set to -inf, so no extra inference is needed
per fold. Ties resolve deterministically: on equal scores the neighbour with the lowest
index wins (`tf.argmax` on CPU returns the first maximum, `tf.math.top_k` is stable,
and blocks merge that way); with k > 1 a vote tie goes to the class of the nearest
tied neighbour.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from vtab_eval.selection.base import Context, Selector


def loo_neighbors(
    features: np.ndarray,
    k: int = 1,
    *,
    chunk_elements: int = 1 << 24,
    dtype: tf.DType = tf.float32,
) -> np.ndarray:
    """int64 `[n, k]`: the indices of each point's k nearest other points, nearest first."""
    features = np.asarray(features)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features must be [n >= 2, dim], got shape {features.shape}")
    n = len(features)
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}], got {k}")
    # The mean, rounded to a multiple of a power of two near 1/64 of each column's range.
    mean = features.mean(axis=0, dtype=np.float64)
    spread = features.max(axis=0).astype(np.float64) - features.min(axis=0)
    exponent = np.floor(np.log2(spread, out=np.zeros_like(spread), where=spread > 0))
    step = np.exp2(exponent - 6)
    shift = np.where(spread > 0, np.round(mean / step) * step, mean)
    # Shifted in float64 a block of rows at a time, straight into `dtype`: no float64
    # copy of the whole matrix.
    centred = np.empty(features.shape, dtype.as_numpy_dtype)
    block = max(1, (1 << 20) // max(1, features.shape[1]))
    for start in range(0, n, block):
        centred[start : start + block] = features[start : start + block] - shift
    x = tf.constant(centred)
    del centred
    bias = -0.5 * tf.reduce_sum(x * x, axis=1)  # -|b|^2 / 2
    if k == 1:
        return _nearest(x, bias, chunk_elements)[:, None]
    rows = max(1, min(n, chunk_elements // n))
    out = []
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        out.append(_chunk_neighbors(x, bias, tf.constant(start), tf.constant(stop), k).numpy())
    return np.concatenate(out).astype(np.int64)


def _nearest(x: tf.Tensor, bias: tf.Tensor, chunk_elements: int) -> np.ndarray:
    """int64 `[n]`: each point's nearest other point, from square blocks of scores."""
    n = int(x.shape[0])
    side = max(1, min(n, math.isqrt(chunk_elements)))
    best = np.full(n, -np.inf, x.dtype.as_numpy_dtype)
    nearest = np.full(n, n, np.int64)

    def merge(start, found, offset):
        # A higher score wins, an equal one with a lower index: the order of the blocks
        # does not matter.
        scores, index = found[0].numpy(), found[1].numpy() + offset
        stop = start + len(scores)
        better = (scores > best[start:stop]) | (
            (scores == best[start:stop]) & (index < nearest[start:stop])
        )
        best[start:stop][better] = scores[better]
        nearest[start:stop][better] = index[better]

    for a in range(0, n, side):
        a_stop = min(n, a + side)
        merge(a, _diagonal_block(x, bias, tf.constant(a), tf.constant(a_stop)), a)
        for b in range(a_stop, n, side):
            b_stop = min(n, b + side)
            bounds = [tf.constant(i) for i in (a, a_stop, b, b_stop)]
            rows, columns = _block_pair(x, bias, *bounds)
            merge(a, rows, b)
            merge(b, columns, a)
    return nearest


def _best(scores):
    """Per row, the highest score and its column (the first one on ties)."""
    index = tf.argmax(scores, axis=1, output_type=tf.int32)
    return tf.gather(scores, index, axis=1, batch_dims=1), index


@tf.function(reduce_retracing=True)
def _diagonal_block(x, bias, start, stop):
    """Points start:stop among themselves, each masked from itself."""
    block = x[start:stop]
    scores = tf.nn.bias_add(tf.matmul(block, block, transpose_b=True), bias[start:stop])
    own = tf.fill([stop - start], tf.constant(-np.inf, scores.dtype))
    return _best(tf.linalg.set_diag(scores, own))


@tf.function(reduce_retracing=True)
def _block_pair(x, bias, a, a_stop, b, b_stop):
    """Points a:a_stop among b:b_stop, and b:b_stop among a:a_stop, from one matmul."""
    dots = tf.matmul(x[a:a_stop], x[b:b_stop], transpose_b=True)
    rows = _best(tf.nn.bias_add(dots, bias[b:b_stop]))
    columns = _best(tf.nn.bias_add(tf.transpose(dots), bias[a:a_stop]))
    return rows, columns


@tf.function(reduce_retracing=True)
def _chunk_neighbors(x, bias, start, stop, k):
    """Rows start:stop against every point, for k > 1."""
    scores = tf.nn.bias_add(tf.matmul(x[start:stop], x, transpose_b=True), bias)
    # Row i of the block is point start + i: its own score is on diagonal `start`.
    own = tf.fill([stop - start], tf.constant(-np.inf, scores.dtype))
    scores = tf.linalg.set_diag(scores, own, k=start)
    return tf.math.top_k(scores, k=k, sorted=True).indices


def vote(neighbor_labels: np.ndarray) -> np.ndarray:
    """Majority label per row of `[n, k]` labels (nearest first); a tie goes to the
    tied class whose member is nearest."""
    neighbor_labels = np.asarray(neighbor_labels)
    if neighbor_labels.shape[1] == 1:
        return neighbor_labels[:, 0]
    out = np.empty(len(neighbor_labels), neighbor_labels.dtype)
    for i, row in enumerate(neighbor_labels):
        values, counts = np.unique(row, return_counts=True)
        tied = set(values[counts == counts.max()].tolist())
        out[i] = next(label for label in row if label in tied)
    return out


def loo_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 1, **kwargs) -> float:
    """Leave-one-out kNN accuracy of `labels` from `features`."""
    labels = np.asarray(labels)
    if len(labels) != len(features):
        raise ValueError(f"{len(features)} features but {len(labels)} labels")
    neighbors = loo_neighbors(features, k, **kwargs)
    return float(np.mean(vote(labels[neighbors]) == labels))


class KnnSelector(Selector):
    name = "knn"
    display_name = "Performance Proxy (kNN)"
    needs = "features"
    uses_labels = True

    def __init__(self, k: int = 1, float64: bool = False, include_baseline: bool = False):
        super().__init__(include_baseline)
        self.k = k
        self.dtype = tf.float64 if float64 else tf.float32

    @classmethod
    def from_config(cls, selection) -> KnnSelector:
        return cls(selection.knn_k, selection.knn_float64, selection.include_baseline)

    def score(self, task, ctx: Context):
        scores, forward = {}, 0.0
        for expert in ctx.pool.experts:
            feats, labels, seconds = ctx.store.outputs(expert.handle, task, ctx.split)
            forward += seconds
            scores[expert.id] = loo_accuracy(feats, labels, self.k, dtype=self.dtype)
        return scores, {"k": self.k, "split": ctx.split, "num_examples": len(labels)}, forward

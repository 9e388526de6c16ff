"""Performance proxy: leave-one-out k-nearest-neighbour accuracy on each expert's
embedding of the task's training images (paper, section 5; k=1, Euclidean).

Distances come from chunked TF matrix products, `|a|^2 + |b|^2 - 2 a.b`, one block of
query rows at a time, so memory is `chunk_rows x n` rather than `n x n` (50k examples
with chunks of ~16M distances take ~64 MB per block in float32). Features are centred
first, which keeps the expansion's cancellation error small in float32; `float64` is
available for exactness.

Leave-one-out: each point's own distance is set to +inf, so no extra inference is
needed per fold. Ties resolve deterministically: `tf.math.top_k` is stable (on equal
values the lower index comes first), so the neighbour with the lowest index wins; with
k > 1 a vote tie goes to the class of the nearest tied neighbour.
"""

from __future__ import annotations

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
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"features must be [n >= 2, dim], got shape {x.shape}")
    if not 1 <= k < len(x):
        raise ValueError(f"k must be in [1, {len(x) - 1}], got {k}")
    x = tf.constant(x - x.mean(axis=0), dtype)
    n = int(x.shape[0])
    sq = tf.reduce_sum(x * x, axis=1)
    rows = max(1, min(n, chunk_elements // n))
    out = []
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        out.append(_chunk_neighbors(x, sq, tf.constant(start), tf.constant(stop), k).numpy())
    return np.concatenate(out).astype(np.int64)


@tf.function(reduce_retracing=True)
def _chunk_neighbors(x, sq, start, stop, k):
    q = x[start:stop]
    d = sq[start:stop, None] + sq[None, :] - 2.0 * tf.matmul(q, x, transpose_b=True)
    d = tf.maximum(d, 0.0)  # Rounding can make a tiny distance negative.
    own = tf.range(start, stop)
    self_mask = tf.one_hot(own, tf.shape(x)[0], on_value=True, off_value=False)
    d = tf.where(self_mask, tf.constant(np.inf, d.dtype), d)
    return tf.math.top_k(-d, k=k, sorted=True).indices


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

    def __init__(self, k: int = 1, float64: bool = False, include_baseline: bool = False):
        super().__init__(include_baseline)
        self.k = k
        self.dtype = tf.float64 if float64 else tf.float32

    def score(self, task, ctx: Context):
        scores, forward = {}, 0.0
        for expert in ctx.pool.experts:
            feats, labels, seconds = ctx.store.outputs(expert.handle, task, ctx.split)
            forward += seconds
            scores[expert.id] = loo_accuracy(feats, labels, self.k, dtype=self.dtype)
        return scores, {"k": self.k, "split": ctx.split, "num_examples": len(labels)}, forward

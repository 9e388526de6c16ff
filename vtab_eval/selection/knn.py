"""Performance proxy: leave-one-out k-nearest-neighbour accuracy on each expert's
embedding of the task's training images (paper, section 5; k=1, Euclidean).

Along a query row `a`, `|a - b|^2 = |a|^2 - 2 (a.b - |b|^2 / 2)` and `|a|^2` is
constant, so the nearest points are those with the largest score `a.b - |b|^2 / 2`:
one matrix product and a bias, and no distance is formed. Up to `chunk_elements`
scores at a time (all of them at the protocol's N <= 1,000) come from BLAS's `syrk`,
which fills one triangle of the symmetric product and so does half a GEMM's work; that
is what makes this kernel as fast as faiss's flat index at that size. Larger N takes
blocks of rows through an ordinary product, so memory stays a block, not `n x n`.

Exact: the expansion loses precision when norms dwarf distances, so every score
carries a rigorous rounding bound (`(D + 4) eps |a| |b|`, which covers the float32
rounding of the centred features and any BLAS summation order). A row whose k
neighbours are not separated from the rest (and, for k > 1, from each other) by more
than those bounds is recomputed from differences in float64. Exact ties always take
that path, so ties resolve the same way everywhere: on equal distances the neighbour
with the lower index wins, and with k > 1 a vote tie goes to the class of the nearest
tied neighbour. Features are first shifted by each column's lower median (a value
of the data, so the shift itself is exact and one outlier cannot move it); NaN or
infinity is refused, naming the row and column.

Leave-one-out: each point's own score is set to -inf, so no extra inference is needed
per fold.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas

from vtab_eval.selection.base import Context, Selector


def check_features(features) -> np.ndarray:
    """`features` as a 2-D array of finite values, or a ValueError naming the culprit."""
    features = np.asarray(features)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features must be [n >= 2, dim], got shape {features.shape}")
    if not np.issubdtype(features.dtype, np.number):
        raise ValueError(f"features must be numbers, got dtype {features.dtype}")
    bad = ~np.isfinite(features)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(
            f"features hold {bad.sum()} non-finite values, the first "
            f"({features[row, column]}) at row {row}, column {column}"
        )
    return features


def loo_neighbors(
    features, k: int = 1, *, chunk_elements: int = 1 << 22, dtype=np.float32
) -> np.ndarray:
    """int64 `[n, k]`: the indices of each point's k nearest other points, nearest first."""
    x = check_features(features)
    n = len(x)
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}], got {k}")
    shifted = _Points(x.astype(np.float64) - np.partition(x, (n - 1) // 2, axis=0)[(n - 1) // 2])
    if shifted.squares.max() > np.finfo(np.float64).max / 4:
        raise ValueError(f"features too large for exact distances (row {shifted.squares.argmax()})")
    fast = shifted
    if dtype != np.float64 and shifted.squares.max() < np.finfo(dtype).max / 4:
        fast = _Points(shifted.x.astype(dtype))
    rows = max(1, min(n, chunk_elements // n))
    gram = _symmetric_gram(fast.x) if rows == n else None
    out = np.empty((n, k), np.int64)
    for start in range(0, n, rows):
        block = np.arange(start, min(n, start + rows))
        dots = gram if gram is not None else fast.x[block] @ fast.x.T
        top, unsure = fast.ranked(dots, block, k)
        if fast is not shifted and unsure.any():
            # Near-ties in float32 are rescored in float64 before any row goes exact.
            doubtful = block[unsure]
            top[unsure], unsure[unsure] = shifted.ranked(
                shifted.x[doubtful] @ shifted.x.T, doubtful, k
            )
        for i in np.flatnonzero(unsure):
            top[i] = _exact_top_k(shifted.x, block[i], k)
        out[block] = top
    return out


class _Points:
    """Points with their squared norms and the rounding bound of their dot products."""

    def __init__(self, x: np.ndarray):
        self.x = x
        self.squares = np.einsum("ij,ij->i", x, x, dtype=np.float64)
        self.norms = np.sqrt(self.squares)
        self.gamma = 1.01 * (x.shape[1] + 4) * np.finfo(x.dtype).eps

    def ranked(self, dots: np.ndarray, rows: np.ndarray, k: int):
        """The top k of `rows` (whose dot products with every point are `dots`), and
        which of them the rounding bound leaves in doubt."""
        scores = dots.astype(np.float64) - 0.5 * self.squares
        scores[np.arange(len(rows)), rows] = -np.inf
        top = _top_k(scores, k)
        bound = self.gamma * (self.norms[rows, None] * self.norms + 0.5 * self.squares)
        return top, _unsure(scores, bound, top)


def _symmetric_gram(x: np.ndarray) -> np.ndarray:
    """`x @ x.T` from one triangle (BLAS syrk: half a GEMM's multiply-adds)."""
    syrk = blas.dsyrk if x.dtype == np.float64 else blas.ssyrk
    upper = syrk(1.0, x)
    return np.triu(upper) + np.triu(upper, 1).T


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the columns of the k highest scores, the lower index first on ties."""
    if k == 1:
        return np.argmax(scores, axis=1)[:, None]  # the first maximum
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def _unsure(scores: np.ndarray, bound: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Rows whose top k could differ from the exact distances' top k, or be ordered
    differently, given each score's rounding bound (exact ties count as unsure)."""
    picked = np.arange(len(top))[:, None], top
    low = (scores - bound)[picked]
    high = scores + bound
    high_picked = high[picked]
    high[picked] = -np.inf
    unsure = low.min(axis=1) <= high.max(axis=1)
    if top.shape[1] > 1:
        above = np.minimum.accumulate(low, axis=1)[:, :-1]
        unsure |= (high_picked[:, 1:] >= above).any(axis=1)
    return unsure


def _exact_top_k(x: np.ndarray, row: int, k: int) -> np.ndarray:
    """Point `row`'s k nearest other points from float64 differences."""
    distances = np.square(x - x[row], dtype=np.float64).sum(axis=1)
    distances[row] = np.inf
    return np.argsort(distances, kind="stable")[:k]


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
        # Results are exact either way; float64 only sends fewer near-ties to the
        # exact path, at twice the product's cost.
        self.dtype = np.float64 if float64 else np.float32

    @classmethod
    def from_config(cls, selection) -> KnnSelector:
        return cls(selection.knn_k, selection.knn_float64, selection.include_baseline)

    def score(self, task, ctx: Context):
        scores, forward = {}, 0.0
        for expert in ctx.pool.experts:
            feats, labels, seconds = ctx.store.outputs(expert.handle, task, ctx.split)
            forward += seconds
            try:
                scores[expert.id] = loo_accuracy(feats, labels, self.k, dtype=self.dtype)
            except ValueError as e:
                raise ValueError(f"kNN on {expert.id}'s features of {task.name}: {e}") from None
        return scores, {"k": self.k, "split": ctx.split, "num_examples": len(labels)}, forward

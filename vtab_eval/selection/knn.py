"""Performance proxy: leave-one-out k-nearest-neighbour accuracy on each expert's
embedding of the task's training images (paper, section 5; k=1, Euclidean).

Along a query row `a`, `|a - b|^2 = |a|^2 - 2 (a.b - |b|^2 / 2)` and `|a|^2` is
constant, so the nearest points are those with the largest score `a.b - |b|^2 / 2`:
one matrix product (BLAS GEMM, in float32 by default) and a bias, computed in place,
and no distance is formed. Up to `chunk_elements` scores are held at a time (all of
them at the protocol's N <= 1,000); larger N takes blocks of rows, so memory stays a
block, not `n x n`.

Exact: the expansion loses precision when norms dwarf distances, so every score of
row `a` carries a rigorous rounding bound `B_a = (D + 8) eps (|a| max|b| + max|b|^2 / 2)`
(it covers the rounding of the centred features, any BLAS summation order and the
bias). For a row whose k best scores are not separated from each other and from the
rest by more than `2 B_a`, the points whose scores come within `2 B_a` of its k-th best
(the only ones that can be among its k nearest; a handful) are ranked again by their
distances from float64 differences. Exact ties always take that path, so ties resolve
the same way everywhere: on equal distances the neighbour with the lower index wins,
and with k > 1 a vote tie goes to the class of the nearest tied neighbour. Features
are first shifted by each column's lower median over the first `CENTRE_SAMPLE` rows (a
value of the data, so the shift itself is exact, and one outlier cannot move it); NaN
or infinity is refused, naming the row and column.

Leave-one-out: each point's own score is set to -inf, so no extra inference is needed
per fold.

Fallback on B (``fallback_level`` > 0, the default of every preset): the best-scoring
expert is picked only when its leave-one-out predictions beat B's in a paired test,
else B is (paper, section 7: the selector "can fall back on the generic model"). The
test is McNemar's exact one: on the examples where exactly one of the two is right,
the expert's wins are Binomial(n, 1/2) if both are equally good; one-sided, since
only "the expert is better" moves the pick off B. The pick is the best of many
near-equal scores, so its score is inflated (over ~33 experts scored on 1,000 images,
by about two standard errors, about 1.4 points): without a test, B, one score among
them, is almost never picked, even on tasks no expert relates to. The level is
0.05, one-sided: a Bonferroni level over the ~32 experts (0.0016) would need a gain
no small expert pool shows on 1,000 images and would fall back almost everywhere,
while 0.05 already stops most picks whose edge over B is selection noise. Lower it
for a more cautious selector.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

from vtab_eval.selection.base import Context, SelectionResult, Selector, register

CENTRE_SAMPLE = 255  # rows whose per-column lower median centres the features


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
    sample = x[: min(n, CENTRE_SAMPLE)]  # a median of all n costs a fifth of the GEMM
    centred = x - np.partition(sample, (len(sample) - 1) // 2, axis=0)[(len(sample) - 1) // 2]
    squares = np.einsum("ij,ij->i", centred, centred, dtype=np.float64)
    if squares.max() > np.finfo(np.float64).max / 4:
        raise ValueError(f"features too large for exact distances (row {squares.argmax()})")
    if dtype == np.float64 or squares.max() >= np.finfo(dtype).max / 4:
        dtype = np.float64
    points = _Points(centred.astype(dtype, copy=False), squares)
    rows = max(1, min(n, chunk_elements // n))
    out = np.empty((n, k), np.int64)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        top, doubtful, near = points.ranked(
            points.x[start:stop] @ points.x.T, np.arange(start, stop), k
        )
        out[start:stop] = top
        if len(doubtful):
            out[start + doubtful] = _exact_top_k(x, start + doubtful, near, k, chunk_elements)
    return out


class _Points:
    """Centred points in the working precision, with the rounding bound of their
    scores, from their squared norms in float64."""

    def __init__(self, x: np.ndarray, squares: np.ndarray):
        self.x = x
        self.half_squares = (0.5 * squares).astype(x.dtype)
        norms = np.sqrt(squares)
        # D + 8 eps: D for the dot product in any summation order, the rest for the
        # rounding of the centred features and of the bias, with room to spare.
        gamma = 1.01 * (x.shape[1] + 8) * np.finfo(x.dtype).eps
        self.bounds = gamma * (norms * norms.max() + 0.5 * squares.max())

    def ranked(self, dots: np.ndarray, rows: np.ndarray, k: int):
        """(top k [len(rows), k], doubtful, near): the top k of `rows` (whose dot
        products with every point are `dots`, which this overwrites with the scores);
        the positions in `rows` of the rows the bound leaves in doubt (their k + 1 best
        scores not all more than twice the bound apart); and for each of those, a mask
        over every point of those that could be among its k nearest."""
        scores = dots
        scores -= self.half_squares
        scores[np.arange(len(rows)), rows] = -np.inf
        # The k best by k passes of argmax, each best masked out after it is taken
        # (cheaper than a partition of every row for small k): the best scores come
        # out in order, and equal ones are left in doubt below, whatever their order.
        top = np.empty((len(rows), k), np.int64)
        best = np.empty((len(rows), k), np.float64)
        every = np.arange(len(rows))
        for j in range(k):
            top[:, j] = np.argmax(scores, axis=1)
            best[:, j] = scores[every, top[:, j]]
            scores[every, top[:, j]] = -np.inf
        runner_up = scores.max(axis=1).astype(np.float64)
        # Differences of float32 values are exact in float64.
        gaps = np.concatenate([best[:, :-1] - best[:, 1:], best[:, -1:] - runner_up[:, None]], 1)
        bound = self.bounds[rows]
        doubtful = np.flatnonzero((gaps <= 2 * bound[:, None]).any(axis=1))
        # Every point whose score could reach the k-th best's, and the k best (masked
        # out of the scores above): the others are farther than the k best for certain.
        near = scores[doubtful] >= (best[doubtful, -1] - 2 * bound[doubtful])[:, None]
        near[np.arange(len(doubtful))[:, None], top[doubtful]] = True
        return top, doubtful, near


def _exact_top_k(
    x: np.ndarray, rows: np.ndarray, near: np.ndarray, k: int, chunk_elements: int
) -> np.ndarray:
    """[len(rows), k]: each row's k nearest among the points its row of `near` marks
    (at least k), from float64 differences; equal distances go to the lower index.
    Rows are taken in groups of about `chunk_elements` differences at a time."""
    out = np.empty((len(rows), k), np.int64)
    per_row = near.sum(axis=1)
    group = np.cumsum(per_row * x.shape[1]) // max(chunk_elements, 1)
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        which, candidates = np.nonzero(near[members])  # by row, then by index
        differences = x[candidates].astype(np.float64) - x[rows[members][which]]
        distances = np.square(differences).sum(axis=1)
        order = np.lexsort((candidates, distances, which))
        starts = np.concatenate([[0], np.cumsum(per_row[members])[:-1]])
        out[members] = candidates[order[starts[:, None] + np.arange(k)]]
    return out


def vote(neighbor_labels: np.ndarray) -> np.ndarray:
    """Majority label per row of `[n, k]` labels (nearest first); a tie goes to the
    tied class whose member is nearest."""
    neighbor_labels = np.asarray(neighbor_labels)
    if neighbor_labels.shape[1] == 1:
        return neighbor_labels[:, 0]
    # Each label's votes in its row, counted at every position the label holds: the
    # first position (nearest neighbour) holding a most-voted label wins.
    votes = np.sum(neighbor_labels[:, :, None] == neighbor_labels[:, None, :], axis=2)
    winner = np.argmax(votes == votes.max(axis=1, keepdims=True), axis=1)
    return neighbor_labels[np.arange(len(neighbor_labels)), winner]


def loo_correct(features: np.ndarray, labels: np.ndarray, k: int = 1, **kwargs) -> np.ndarray:
    """bool `[n]`: whether each point's leave-one-out kNN prediction is its label."""
    labels = np.asarray(labels)
    if len(labels) != len(features):
        raise ValueError(f"{len(features)} features but {len(labels)} labels")
    neighbors = loo_neighbors(features, k, **kwargs)
    return vote(labels[neighbors]) == labels


def loo_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 1, **kwargs) -> float:
    """Leave-one-out kNN accuracy of `labels` from `features`."""
    return float(np.mean(loo_correct(features, labels, k, **kwargs)))


def beats_baseline(expert_correct, baseline_correct, level: float) -> dict:
    """McNemar's exact one-sided test that the expert's paired leave-one-out predictions
    beat B's: ``wins`` (expert right, B wrong) against ``losses`` (the reverse) are
    Binomial(wins + losses, 1/2) when both are equally good. Deterministic."""
    expert_correct = np.asarray(expert_correct, bool)
    baseline_correct = np.asarray(baseline_correct, bool)
    if expert_correct.shape != baseline_correct.shape:
        raise ValueError(
            f"paired predictions differ in shape: {expert_correct.shape} and "
            f"{baseline_correct.shape}"
        )
    wins = int(np.sum(expert_correct & ~baseline_correct))
    losses = int(np.sum(~expert_correct & baseline_correct))
    p_value = (
        float(stats.binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)
        if wins + losses
        else 1.0
    )
    return {"wins": wins, "losses": losses, "p_value": p_value, "level": level,
            "beats_baseline": p_value < level}  # fmt: skip


@register
class KnnSelector(Selector):
    name = "knn"
    display_name = "Performance Proxy (kNN)"
    needs = "features"
    uses_labels = True
    is_proxy = True
    short_name = "kNN"
    score_label = "kNN accuracy"
    table_row = 80

    def __init__(
        self,
        k: int = 1,
        float64: bool = False,
        include_baseline: bool = False,
        fallback_level: float = 0.0,
    ):
        super().__init__(include_baseline)
        self.k = k
        # Results are exact either way; float64 only sends fewer near-ties to the
        # exact path, at twice the product's cost.
        self.dtype = np.float64 if float64 else np.float32
        if not 0.0 <= fallback_level < 1.0:
            raise ValueError(f"the fallback level must be in [0, 1), got {fallback_level}")
        self.fallback_level = fallback_level  # 0: no test, the best score is picked

    @classmethod
    def from_config(cls, selection) -> KnnSelector:
        return cls(
            selection.knn_k,
            selection.knn_float64,
            selection.include_baseline,
            selection.get("knn_fallback_level", 0.0),
        )

    def _correct(self, expert, task, ctx: Context) -> tuple[np.ndarray, float]:
        feats, labels, seconds = ctx.store.outputs(expert.handle, task, ctx.split)
        try:
            return loo_correct(feats, labels, self.k, dtype=self.dtype), seconds
        except ValueError as e:
            raise ValueError(f"kNN on {expert.id}'s features of {task.name}: {e}") from None

    def score(self, task, ctx: Context):
        scores, forward = {}, 0.0
        for expert in ctx.pool.experts:
            correct, seconds = self._correct(expert, task, ctx)
            scores[expert.id] = float(np.mean(correct))
            forward += seconds
        return scores, {"k": self.k, "split": ctx.split, "num_examples": len(correct)}, forward

    def select(self, task, ctx: Context) -> SelectionResult:
        """The best score's expert, or B when the fallback is on, B is a candidate and
        the expert's predictions do not beat B's (`beats_baseline`)."""
        result = super().select(task, ctx)
        baseline = ctx.pool.baseline
        if (
            not self.fallback_level
            or baseline is None
            or result.pick == baseline.id
            or baseline.id not in self.candidates(ctx.pool)
        ):
            return result
        # Features are cached by now: recomputing two experts' predictions is cheap.
        expert_correct, _ = self._correct(ctx.pool.get(result.pick), task, ctx)
        baseline_correct, _ = self._correct(baseline, task, ctx)
        test = beats_baseline(expert_correct, baseline_correct, self.fallback_level)
        details = {**result.details, "fallback": {"best": result.pick, **test}}
        pick = result.pick if test["beats_baseline"] else baseline.id
        return dataclasses.replace(result, pick=pick, details=details)

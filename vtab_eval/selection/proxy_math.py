"""Shared numerics of the transferability proxies: labels as class indices, class means
and scatters, the features' covariance, its eigendecomposition, a PCA from it and the
nearest neighbours (computed once per module and kept, so proxies scoring a module in
one pass share them), the log-determinant of a Gram matrix from its smaller side, and a row-wise softmax.
Everything works on float64 copies, so no proxy changes the arrays it is given.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import linalg

from vtab_eval.selection.knn import check_features, loo_neighbors

# Nearest neighbours kept per distance: the kNN variants with k = 1 and k = 5 share them.
KEPT_NEIGHBOURS = 5


class Labelled:
    """Features as a float64 copy beside their labels as class indices `0..C-1`, and
    what several proxies derive from them, each computed when first asked and kept.

    `x` [n, d] float64 (a read-only copy), `y` [n] class indices, `counts` [C] images
    per class, `classes` the original label values; `shared_seconds` (and
    `shared_wall_seconds`) the CPU (and wall) seconds spent computing the kept
    quantities (`centred`, `covariance`, `spectrum`, `neighbours`), which the ranking
    command reports apart from the proxies that asked for them. CPU seconds are read
    from `clock`: the process's by default, the calling thread's (`time.thread_time`)
    where modules are scored in parallel threads.
    """

    def __init__(self, features, labels, min_classes: int = 2, clock=time.process_time):
        x = check_features(features)
        labels = np.asarray(labels)
        if labels.shape != (len(x),):
            raise ValueError(f"{len(x)} feature rows but labels of shape {labels.shape}")
        self.classes, self.y = np.unique(labels, return_inverse=True)
        if len(self.classes) < min_classes:
            raise ValueError(
                f"the task's images carry {len(self.classes)} class(es); "
                f"this proxy needs at least {min_classes}"
            )
        self.x = np.array(x, dtype=np.float64, copy=True)
        self.x.setflags(write=False)  # shared by every proxy scoring the module
        self.counts = np.bincount(self.y, minlength=len(self.classes))
        self._indicators = None  # [C, n] class indicators, made once
        self._kept: dict = {}
        self._computing = 0
        self.clock = clock
        self.shared_seconds = self.shared_wall_seconds = 0.0

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def onehot(self) -> np.ndarray:
        """[n, C] float64 indicators of the classes (a new array)."""
        return np.eye(self.num_classes)[self.y]

    def class_means(self, x: np.ndarray | None = None) -> np.ndarray:
        """[C, d] per-class means of `x` (default: the features): one matrix product
        with the class indicators, many times faster than an unbuffered `np.add.at`."""
        x = self.x if x is None else x
        if self._indicators is None:
            self._indicators = self.onehot().T
        return (self._indicators @ x) / self.counts[:, None]

    def within_scatter(self, x: np.ndarray | None = None) -> np.ndarray:
        """[d, d] sum over classes of prior_c times the class's biased covariance, i.e.
        the mean outer product of each row's deviation from its class mean."""
        x = self.x if x is None else x
        deviations = x - self.class_means(x)[self.y]
        return deviations.T @ deviations / len(x)

    def _kept_value(self, key: str, compute):
        """`compute()` the first time `key` is asked for, read-only and kept after; its
        CPU seconds (outermost calls only) go to `shared_seconds`."""
        if key not in self._kept:
            start, wall_start = self.clock(), time.perf_counter()
            self._computing += 1
            try:
                value = compute()
            finally:
                self._computing -= 1
            for array in value if isinstance(value, tuple) else (value,):
                array.setflags(write=False)
            self._kept[key] = value
            if not self._computing:
                self.shared_seconds += self.clock() - start
                self.shared_wall_seconds += time.perf_counter() - wall_start
        return self._kept[key]

    def centred(self) -> np.ndarray:
        """[n, d] the features minus their mean."""
        return self._kept_value("centred", lambda: self.x - self.x.mean(axis=0))

    def covariance(self) -> np.ndarray:
        """[d, d] the features' biased (1/n) covariance."""
        return self._kept_value("covariance", lambda: self.centred().T @ self.centred() / self.n)

    def spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """(variances [d], axes [d, d] as columns): the covariance's eigenvalues, largest
        first, and eigenvectors."""

        def decompose():
            variance, axes = symmetric_eigen(self.covariance())
            return variance[::-1].copy(), axes[:, ::-1].copy()

        return self._kept_value("spectrum", decompose)

    def neighbours(self, k: int, cosine: bool = False) -> np.ndarray:
        """[n, k] each image's k nearest other images (`knn.loo_neighbors`, nearest
        first), Euclidean or cosine (`unit_rows`). At least `KEPT_NEIGHBOURS` are
        computed and kept per distance: the first k of the k + j nearest are the k
        nearest, ties included (the kernel is exact and breaks ties by index)."""
        key = "neighbours_cosine" if cosine else "neighbours_euclidean"
        kept = self._kept.get(key)
        if kept is None or kept.shape[1] < k:
            self._kept.pop(key, None)
            x = unit_rows(self.x) if cosine else self.x
            wanted = min(max(k, KEPT_NEIGHBOURS), self.n - 1)
            kept = self._kept_value(key, lambda: loo_neighbors(x, wanted))
        return kept[:, :k]

    def principal_components(self, dims: int | float) -> np.ndarray:
        """The features centred and projected on their leading principal axes: `dims`
        of them when an int (at most the rank), or the fewest keeping that fraction of
        variance when a float in (0, 1] (`leading`). The axes are the kept spectrum's
        (an eigendecomposition of the d x d covariance: a few times cheaper than an SVD
        of the n x d data at n = 1,000; the projection needs no more accuracy than that
        gives)."""
        variance, axes = self.spectrum()
        return self.centred() @ axes[:, : leading(variance, dims, self.x.shape)]


def symmetric_eigen(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues ascending, eigenvectors as columns) of a symmetric matrix, by
    LAPACK's divide and conquer (scipy's `evd` driver: about 15% faster than numpy's
    `eigh` on 512 x 512 covariances)."""
    return linalg.eigh(matrix, driver="evd", check_finite=False)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (an all-zero row stays zero): Euclidean distances
    between them rank as cosine distances do."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def labelled(features, labels=None) -> Labelled:
    """`features` if already a `Labelled` (whose kept quantities are then shared), else
    a `Labelled` of `features` and `labels`."""
    return features if isinstance(features, Labelled) else Labelled(features, labels)


def leading(variance: np.ndarray, dims: int | float, shape: tuple[int, int]) -> int:
    """How many of the principal axes with `variance` (largest first) a PCA to `dims`
    keeps: `dims` when an int (at most the rank), or the fewest keeping that fraction
    of the variance when a float in (0, 1]; at least one."""
    variance = np.maximum(variance, 0.0)
    # Eigenvalues this far below the largest are rounding of zero: beyond the rank.
    rank = int(np.sum(variance > variance[0] * max(shape) * np.finfo(np.float64).eps))
    if isinstance(dims, float):
        if not 0.0 < dims <= 1.0:
            raise ValueError(f"a PCA variance fraction must be in (0, 1], got {dims}")
        total = variance.sum()
        keep = int(np.searchsorted(np.cumsum(variance) / total, dims) + 1) if total else 1
    else:
        keep = int(dims)
    return max(1, min(keep, rank))


def logdet_identity_plus(z: np.ndarray, scale: float) -> float:
    """log det(I_d + scale Z^T Z) for Z [n, d], from the smaller of Z^T Z and Z Z^T
    (Sylvester's identity), by Cholesky: the matrix is symmetric positive definite."""
    return logdet_identity_plus_gram(z.T @ z if z.shape[1] <= z.shape[0] else z @ z.T, scale)


def logdet_identity_plus_gram(gram: np.ndarray, scale: float) -> float:
    """log det(I + scale G) for a Gram matrix G, by Cholesky."""
    matrix = scale * gram
    matrix[np.diag_indices_from(matrix)] += 1.0
    return float(2.0 * np.sum(np.log(np.diag(np.linalg.cholesky(matrix)))))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax (a new array)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def leep_from_posteriors(posteriors: np.ndarray, y: np.ndarray, num_classes: int) -> float:
    """The LEEP formula for source posteriors [n, Z] and target class indices y."""
    joint = np.zeros((num_classes, posteriors.shape[1]))
    np.add.at(joint, y, posteriors)
    conditional = joint / np.maximum(joint.sum(axis=0, keepdims=True), np.finfo(float).tiny)
    expected = np.sum(posteriors * conditional[y], axis=1)
    return float(np.mean(np.log(np.maximum(expected, np.finfo(float).tiny))))

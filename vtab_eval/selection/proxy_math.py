"""Shared numerics of the transferability proxies: labels as class indices, class means
and scatters, a PCA, the log-determinant of a Gram matrix from its smaller side, and a
row-wise softmax. Everything works on float64 copies, so no proxy changes the arrays it
is given.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from vtab_eval.selection.knn import check_features


class Labelled:
    """Features as a float64 copy beside their labels as class indices `0..C-1`.

    `x` [n, d] float64 (a copy: callers may change it), `y` [n] class indices,
    `counts` [C] images per class, `classes` the original label values.
    """

    def __init__(self, features, labels, min_classes: int = 2):
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
        self.counts = np.bincount(self.y, minlength=len(self.classes))
        self._indicators = None  # [C, n] class indicators, made once

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


def pca(x: np.ndarray, dims: int | float) -> np.ndarray:
    """`x` centred and projected on its leading principal axes: `dims` of them when an
    int (at most the rank), or the fewest keeping that fraction of variance when a
    float in (0, 1). Axes of zero variance are dropped in both cases. The axes come
    from the eigenvectors of the d x d scatter (a few times cheaper than an SVD of the
    n x d data at n = 1,000; the projection needs no more accuracy than that gives);
    for an int, only the leading `dims` of them are computed."""
    centred = x - x.mean(axis=0)
    scatter = centred.T @ centred
    if isinstance(dims, float):
        if not 0.0 < dims <= 1.0:
            raise ValueError(f"a PCA variance fraction must be in (0, 1], got {dims}")
        variance, axes = np.linalg.eigh(scatter)
    else:
        last = len(scatter) - 1
        first = max(0, last + 1 - max(1, int(dims)))
        variance, axes = linalg.eigh(scatter, subset_by_index=[first, last], check_finite=False)
    variance, axes = np.maximum(variance[::-1], 0.0), axes[:, ::-1]
    if np.trace(scatter) == 0:
        return centred[:, :1] * 0.0  # every row equal: one axis carrying nothing
    # Eigenvalues this far below the largest are rounding of zero: beyond the rank.
    rank = int(np.sum(variance > variance[0] * max(x.shape) * np.finfo(np.float64).eps))
    if isinstance(dims, float):
        keep = int(np.searchsorted(np.cumsum(variance) / variance.sum(), dims) + 1)
    else:
        keep = int(dims)
    keep = max(1, min(keep, rank))
    return centred @ axes[:, :keep]


def logdet_identity_plus(z: np.ndarray, scale: float) -> float:
    """log det(I_d + scale Z^T Z) for Z [n, d], from the smaller of Z^T Z and Z Z^T
    (Sylvester's identity), by Cholesky: the matrix is symmetric positive definite."""
    gram = z.T @ z if z.shape[1] <= z.shape[0] else z @ z.T
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

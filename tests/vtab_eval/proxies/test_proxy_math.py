"""The proxies' shared numerics against the plain computations they replace."""

import numpy as np
import pytest

from tests.vtab_eval.proxies.conftest import clustered
from vtab_eval.selection import proxy_math
from vtab_eval.selection.proxy_math import Labelled


def test_class_means_and_within_scatter_are_the_per_class_loops():
    x, labels = clustered(n=50, d=7, classes=4, seed=2)
    labels = labels * 3 - 1  # labels need not be 0..C-1
    data = Labelled(x, labels)
    means = np.stack([x[labels == c].astype(np.float64).mean(0) for c in np.unique(labels)])
    np.testing.assert_allclose(data.class_means(), means, rtol=1e-13, atol=1e-13)
    deviations = x - means[data.y]
    scatter = sum(np.outer(r, r) for r in deviations) / len(x)
    np.testing.assert_allclose(data.within_scatter(), scatter, rtol=1e-12, atol=1e-13)
    doubled = data.class_means(2.0 * data.x)  # any matrix of the same rows
    np.testing.assert_allclose(doubled, 2.0 * means, rtol=1e-13, atol=1e-13)


def _full_pca(x, dims):
    """The PCA from every eigenvector, as it was computed before only the leading
    ones were asked for."""
    centred = x - x.mean(axis=0)
    variance, axes = np.linalg.eigh(centred.T @ centred)
    variance, axes = np.maximum(variance[::-1], 0.0), axes[:, ::-1]
    rank = int(np.sum(variance > variance[0] * max(x.shape) * np.finfo(np.float64).eps))
    return centred @ axes[:, : max(1, min(dims, rank))]


@pytest.mark.parametrize("n,d,dims", [(60, 8, 3), (60, 8, 64), (15, 40, 64), (15, 40, 5)])
def test_leading_axes_alone_give_the_full_decompositions_projection(n, d, dims):
    x, _ = clustered(n=n, d=d, spread=1.0)
    x = x.astype(np.float64)
    x[:, 1] = 4.0  # a constant feature: an axis of zero variance
    ours, full = proxy_math.pca(x, dims), _full_pca(x, dims)
    assert ours.shape == full.shape
    # Axes are defined up to sign (the eigenvalues here are distinct).
    np.testing.assert_allclose(np.abs(ours), np.abs(full), rtol=1e-7, atol=1e-9)
    assert proxy_math.pca(np.ones((5, 3)), 2).shape == (5, 1)  # no variance at all

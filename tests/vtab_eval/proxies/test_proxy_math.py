"""The proxies' shared numerics against the plain computations they replace."""

import numpy as np
import pytest

from tests.vtab_eval.proxies.conftest import clustered
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


def _pca_as_first_written(x, dims):
    """The PCA from numpy's eigendecomposition of the scatter, as first written."""
    centred = x - x.mean(axis=0)
    variance, axes = np.linalg.eigh(centred.T @ centred)
    variance, axes = np.maximum(variance[::-1], 0.0), axes[:, ::-1]
    rank = int(np.sum(variance > variance[0] * max(x.shape) * np.finfo(np.float64).eps))
    if isinstance(dims, float):
        dims = int(np.searchsorted(np.cumsum(variance) / variance.sum(), dims) + 1)
    return centred @ axes[:, : max(1, min(dims, rank))]


@pytest.mark.parametrize(
    "n,d,dims", [(60, 8, 3), (60, 8, 64), (15, 40, 64), (15, 40, 5), (60, 8, 0.8)]
)
def test_principal_components_of_the_kept_spectrum_are_the_plain_pca(n, d, dims):
    x, labels = clustered(n=n, d=d, spread=1.0)
    x = x.astype(np.float64)
    x[:, 1] = 4.0  # a constant feature: an axis of zero variance
    expected = _pca_as_first_written(x, dims)
    ours = Labelled(x, labels).principal_components(dims)
    assert ours.shape == expected.shape
    # Axes are defined up to sign (the eigenvalues here are distinct).
    np.testing.assert_allclose(np.abs(ours), np.abs(expected), rtol=1e-7, atol=1e-9)
    flat = Labelled(np.ones((6, 3)), np.arange(6) % 2).principal_components(2)
    np.testing.assert_array_equal(flat, np.zeros((6, 1)))  # no variance: one empty axis


def test_kept_quantities_are_computed_once_read_only_and_timed():
    x, labels = clustered(n=40, d=6)
    data = Labelled(x, labels)
    assert not data.x.flags.writeable
    variance, axes = data.spectrum()
    assert data.spectrum()[1] is axes and not axes.flags.writeable
    assert data.covariance() is data.covariance()
    np.testing.assert_allclose(axes * variance @ axes.T, data.covariance(), atol=1e-12)
    centred = x.astype(np.float64) - x.astype(np.float64).mean(0)
    np.testing.assert_allclose(data.covariance(), centred.T @ centred / 40, atol=1e-13)
    assert data.shared_seconds > 0 and data.shared_wall_seconds > 0

"""The proxies' shared numerics against the plain computations they replace."""

import numpy as np

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

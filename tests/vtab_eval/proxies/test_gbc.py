"""GBC against a numerical integral of sqrt(p q) for one-dimensional Gaussians."""

import numpy as np
import pytest
from scipy import integrate, stats

from tests.vtab_eval.proxies.conftest import clustered
from vtab_eval.selection import gbc


def test_bhattacharyya_coefficient_is_the_overlap_integral():
    means, variances = np.array([[0.0], [1.5]]), np.array([[1.0], [2.5]])
    p, q = (stats.norm(m[0], np.sqrt(v[0])) for m, v in zip(means, variances, strict=True))
    overlap, _ = integrate.quad(lambda t: np.sqrt(p.pdf(t) * q.pdf(t)), -30, 30, epsabs=1e-13)
    distances = gbc.bhattacharyya_distances(means, variances)
    assert np.exp(-distances[0, 1]) == pytest.approx(overlap, rel=1e-9)
    assert distances[0, 0] == 0 and distances[0, 1] == distances[1, 0]


def test_two_one_dimensional_classes_by_hand():
    # Means 0 and 4, variances 1 and 1: D_B = 16 / 8 = 2, both ordered pairs count.
    x = np.array([[-1.0], [1.0], [3.0], [5.0]])
    assert gbc.gbc(x, np.array([0, 0, 1, 1])) == pytest.approx(-2 * np.exp(-2.0), rel=1e-12)


def test_better_separated_classes_score_higher():
    tight, labels = clustered(spread=0.1)
    loose, _ = clustered(spread=3.0)
    assert gbc.gbc(tight, labels) > gbc.gbc(loose, labels)

"""NLEEP's LEEP formula by hand, and the whole proxy on separable and noisy features."""

import numpy as np
import pytest

from tests.vtab_eval.proxies.conftest import clustered
from vtab_eval.selection import nleep, proxy_math


def test_leep_formula_by_hand():
    # Two images, two components. p(y|z): component 0 holds 0.8 of class 0 and 0.2 of
    # class 1 over its total mass 1.0; component 1 holds 0.2 and 0.8.
    posteriors = np.array([[0.8, 0.2], [0.2, 0.8]])
    y = np.array([0, 1])
    # Image 0: 0.8 * 0.8 + 0.2 * 0.2 = 0.68; image 1 likewise.
    assert proxy_math.leep_from_posteriors(posteriors, y, 2) == pytest.approx(np.log(0.68))


def test_separable_features_score_near_zero_and_above_noise():
    x, labels = clustered(n=60, d=8, spread=0.05)
    noise = np.random.default_rng(0).normal(size=x.shape)
    assert nleep.nleep(x, labels) > -0.05
    assert nleep.nleep(noise, labels) < nleep.nleep(x, labels)

"""TransRate against the coding rate evaluated directly in d x d form."""

import numpy as np
import pytest

from tests.vtab_eval.proxies.conftest import clustered
from vtab_eval.selection import transrate


def _rate(z, d, distortion):
    return 0.5 * np.linalg.slogdet(np.eye(d) + d / (len(z) * distortion) * z.T @ z)[1]


@pytest.mark.parametrize("n,d", [(60, 8), (12, 30)])
def test_matches_the_direct_log_determinants(n, d):
    x, labels = clustered(n=n, d=d)
    z = x.astype(np.float64) - x.astype(np.float64).mean(0)
    expected = _rate(z, d, 1e-2) - sum(
        np.mean(labels == c) * _rate(z[labels == c], d, 1e-2) for c in range(3)
    )
    assert transrate.transrate(x, labels, 1e-2) == pytest.approx(expected, rel=1e-9)


def test_one_dimension_by_hand():
    # Centred already; in one dimension R(Z) = 1/2 log(1 + mean(z^2) / eps^2).
    x = np.array([[-3.0], [-1.0], [0.0], [4.0]])
    eps2 = 0.25
    rate = lambda mean_square: 0.5 * np.log(1 + mean_square / eps2)  # noqa: E731
    expected = rate(26 / 4) - (0.5 * rate(10 / 2) + 0.5 * rate(16 / 2))
    assert transrate.transrate(x, np.array([0, 0, 1, 1]), eps2) == pytest.approx(expected)

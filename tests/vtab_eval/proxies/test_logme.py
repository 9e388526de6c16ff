"""LogME against a direct evaluation of the marginal likelihood."""

import numpy as np
import pytest
from scipy import stats

from tests.vtab_eval.proxies.conftest import clustered
from vtab_eval.selection import logme


def _direct_log_evidence(x, y, alpha, beta):
    """log N(y; 0, F F^T / alpha + I / beta): the evidence with w integrated out."""
    cov = x @ x.T / alpha + np.eye(len(x)) / beta
    return stats.multivariate_normal(np.zeros(len(x)), cov).logpdf(y)


def test_evidence_is_the_marginal_likelihood_at_its_maximum():
    x, labels = clustered(n=40, d=6, classes=2, seed=3)
    x = x.astype(np.float64)
    targets = np.eye(2)[labels]
    values, alpha, beta, unconverged = logme.evidence(x, targets, tolerance=1e-12)
    assert unconverged == 0
    for k in range(2):
        direct = _direct_log_evidence(x, targets[:, k], alpha[k], beta[k])
        assert values[k] == pytest.approx(direct, rel=1e-9)
        # A maximum: moving alpha or beta by 1% lowers the evidence.
        for da, db in ((1.01, 1), (0.99, 1), (1, 1.01), (1, 0.99)):
            moved = _direct_log_evidence(x, targets[:, k], alpha[k] * da, beta[k] * db)
            assert moved < direct


def test_with_fewer_images_than_dimensions_the_evidence_counts_every_dimension():
    # n < d: a perfect fit exists, so beta grows until the floor stops it; the value
    # returned is still the exact evidence at the returned (alpha, beta), with the
    # d - n zero singular values in log|A|.
    x, labels = clustered(n=12, d=30, classes=2, seed=3, spread=1.0)
    x = x.astype(np.float64)
    targets = np.eye(2)[labels]
    values, alpha, beta, _ = logme.evidence(x, targets)
    for k in range(2):
        direct = _direct_log_evidence(x, targets[:, k], alpha[k], beta[k])
        assert values[k] == pytest.approx(direct, rel=1e-6)


@pytest.mark.parametrize("n,d", [(40, 6), (12, 30)])
def test_targets_projected_without_forming_u_are_the_left_singular_coordinates(n, d):
    x, labels = clustered(n=n, d=d, classes=3, seed=5, spread=1.0)
    x = x.astype(np.float64)
    targets = np.eye(3)[labels]
    sigma, z = logme.projected_spectrum(x, targets)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    order = np.argsort(s**2)  # ascending, as the eigenvalues come
    np.testing.assert_allclose(sigma, (s**2)[order], rtol=1e-10)
    # Singular vectors are defined up to sign: compare squared coordinates.
    np.testing.assert_allclose(z**2, (u[:, order].T @ targets) ** 2, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("offset", [0.0, 30.0])
def test_score_is_the_mean_evidence_per_image(offset):
    # The score takes X^T X from the shared covariance and the mean; the evidence here
    # forms X^T X directly (an offset makes the mean dominate the covariance).
    x, labels = clustered(n=30, d=5, seed=1)
    x = x + np.float32(offset)
    values, *_ = logme.evidence(x.astype(np.float64), np.eye(3)[labels])
    score, _ = logme.logme(x, labels)
    assert score == pytest.approx(values.mean() / 30, rel=1e-10)


def test_separable_features_score_higher_than_noise():
    x, labels = clustered(n=60, d=8, spread=0.1)
    noise = np.random.default_rng(0).normal(size=x.shape)
    assert logme.logme(x, labels)[0] > logme.logme(noise, labels)[0]


def test_degenerate_inputs_stay_finite():
    x, labels = clustered(n=20, d=40)
    assert np.isfinite(logme.logme(x, labels)[0])  # n < d
    assert np.isfinite(logme.logme(np.zeros((20, 4)), labels)[0])  # no signal at all
    constant = np.hstack([x, np.ones((20, 1))])
    assert np.isfinite(logme.logme(constant, labels)[0])
    # An unconverged iteration is counted, not hidden.
    assert logme.logme(x, labels, max_iterations=1)[1] > 0

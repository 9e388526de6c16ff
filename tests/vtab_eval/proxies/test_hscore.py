"""H-score against scikit-learn's covariance estimates and a one-dimensional hand case."""

import numpy as np
import pytest
from sklearn.covariance import EmpiricalCovariance, ledoit_wolf, ledoit_wolf_shrinkage

from tests.vtab_eval.proxies.conftest import clustered
from vtab_eval.selection import hscore


def _between(x, labels):
    """cov(E[f|y]) the long way: each row replaced by its class mean, then covariance."""
    means = np.stack([x[labels == c].mean(0) for c in labels])
    return EmpiricalCovariance().fit(means).covariance_


def test_one_dimension_is_between_over_total_variance():
    x = np.array([[0.0], [2.0], [10.0], [12.0]])
    labels = np.array([0, 0, 1, 1])
    # Class means 1 and 11 around 6: between variance 25; total variance 26.
    assert hscore.h_score(x, labels) == pytest.approx(25 / 26, rel=1e-12)


def test_plain_score_matches_scikit_learn_covariances(blobs):
    x, labels = blobs
    x = x.astype(np.float64)
    cov = EmpiricalCovariance().fit(x).covariance_
    expected = np.trace(np.linalg.inv(cov) @ _between(x, labels))
    assert hscore.h_score(x, labels) == pytest.approx(expected, rel=1e-8)


def test_shrunk_score_matches_ledoit_wolf(blobs):
    x, labels = blobs
    x = x.astype(np.float64)
    cov, alpha = ledoit_wolf(x)
    expected = np.trace(np.linalg.inv(cov) @ ((1 - alpha) * _between(x, labels)))
    score, shrinkage = hscore.shrunk_h_score(x, labels)
    assert shrinkage == pytest.approx(alpha, rel=1e-10)
    assert score == pytest.approx(expected, rel=1e-8)


def test_shrinkage_keeps_n_below_d_finite_and_bounded():
    x, labels = clustered(n=20, d=60)
    score, alpha = hscore.shrunk_h_score(x, labels)
    # H is at most the number of classes minus one (a trace of a projection's
    # eigenvalues, each at most one) when the covariance is the true one.
    assert 0 < alpha <= 1 and 0 < score <= 2 + 1e-9


def _cases():
    x, labels = clustered(n=60, d=8)
    constant = x.copy()
    constant[:, 3] = 2.5
    wide, wide_labels = clustered(n=15, d=40)
    return {
        "n > d": (x, labels),
        "a constant feature": (constant, labels),
        "n < d": (wide, wide_labels),
        "one feature": (x[:, :1], labels),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_plain_score_is_the_pseudo_inverse_trace(case):
    # The eigenbasis sum against the formula it replaces, singular cases included.
    x, labels = _cases()[case]
    x = x.astype(np.float64)
    centred = x - x.mean(0)
    cov = centred.T @ centred / len(x)
    expected = np.trace(np.linalg.pinv(cov, hermitian=True) @ _between(x, labels))
    assert hscore.h_score(x, labels) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("case", list(_cases()))
def test_closed_form_shrinkage_is_scikit_learns(case):
    x, labels = _cases()[case]
    centred = x.astype(np.float64) - x.astype(np.float64).mean(0)
    empirical = centred.T @ centred / len(x)
    expected = ledoit_wolf_shrinkage(centred, assume_centered=True)
    got = hscore.ledoit_wolf_shrinkage(centred, empirical)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-15)
    # And the shrunk score as the d x d solve computed it.
    mu = np.trace(empirical) / len(empirical)
    cov = (1 - got) * empirical + got * mu * np.eye(len(empirical))
    direct = np.trace(np.linalg.solve(cov, (1 - got) * _between(x.astype(np.float64), labels)))
    assert hscore.shrunk_h_score(x, labels)[0] == pytest.approx(direct, rel=1e-9)

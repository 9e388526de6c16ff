"""H-score (Bao et al., "An Information-Theoretic Approach to Transferability in Task
Transfer Learning", ICIP 2019) and its shrinkage form (Ibrahim, Ponomareva and
Mazumder, "Newer is not always better: Rethinking transferability metrics, their
peculiarities, stability and performance", arXiv 2110.06893).

    H(f)       = tr( cov(f)^+  cov(E[f | y]) )
    H_alpha(f) = tr( cov_alpha(f)^-1  (1 - alpha) cov(E[f | y]) )

cov(f) is the features' (biased, 1/n) covariance and cov(E[f|y]) that of each image's
class mean. The plain score inverts cov(f) with a pseudo-inverse, which is singular
whenever n <= d (and noisy near it); the shrinkage score replaces it by the
Ledoit-Wolf estimate cov_alpha = (1 - alpha) cov(f) + alpha mu I (scikit-learn's
`ledoit_wolf_shrinkage`, here in closed form), and shrinks the between-class
covariance by the same (1 - alpha), as Ibrahim et al. do.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from vtab_eval.selection.base import register
from vtab_eval.selection.feature_proxy import FeatureProxy
from vtab_eval.selection.proxy_math import labelled

PINV_RCOND = 1e-15  # numpy's pinv: eigenvalues below this times the largest are dropped


def _means_and_priors(data):
    """(centred class means [C, d], class priors [C])."""
    return data.class_means(data.centred()), data.counts / data.n


def h_score(features, labels=None) -> float:
    """tr(cov^+ B) in cov's eigenbasis: sum_i (sum_c w_c (m_c . v_i)^2) / lambda_i over
    the eigenvalues numpy's pinv keeps, without forming the pseudo-inverse or the d x d
    product with B."""
    data = labelled(features, labels)
    means, weights = _means_and_priors(data)
    variance, axes = data.spectrum()
    keep = np.abs(variance) > PINV_RCOND * np.abs(variance).max(initial=0.0)
    along = means @ axes[:, keep]  # [C, r]: each class mean's coordinates
    return float(np.sum(weights @ along**2 / variance[keep]))


def ledoit_wolf_shrinkage(centred: np.ndarray, empirical: np.ndarray) -> float:
    """scikit-learn's `ledoit_wolf_shrinkage(centred, assume_centered=True)` in closed
    form: its two sums over d x d products are sum_k |x_k|^4 (over the rows) and the
    squared Frobenius norm of the covariance `empirical` already at hand, which saves
    two n x d x d products."""
    n, d = centred.shape
    if d == 1:
        return 0.0  # scikit-learn's answer: with one feature shrinkage changes nothing
    variances = np.diag(empirical)
    mu = variances.sum() / d
    row_squares = np.einsum("ij,ij->i", centred, centred)
    sum_of_squares = np.sum(empirical**2)  # scikit-learn's delta_
    beta = (np.sum(row_squares**2) / n - sum_of_squares) / (d * n)
    delta = (sum_of_squares - 2.0 * mu * variances.sum() + d * mu**2) / d
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def shrunk_h_score(features, labels=None) -> tuple[float, float]:
    """(H_alpha, alpha): the shrunk covariance is positive definite whenever alpha > 0,
    so a Cholesky solve with the C class means replaces the solve with d right-hand
    sides (B); a singular covariance (alpha = 0) goes to LU, which names it."""
    data = labelled(features, labels)
    means, weights = _means_and_priors(data)
    empirical = data.covariance()
    alpha = ledoit_wolf_shrinkage(data.centred(), empirical)
    mu = np.trace(empirical) / len(empirical)
    if mu == 0:
        return 0.0, alpha  # every image has the same features: nothing to transfer
    cov = (1.0 - alpha) * empirical
    cov[np.diag_indices_from(cov)] += alpha * mu
    try:
        solved = linalg.cho_solve(linalg.cho_factor(cov, check_finite=False), means.T)
    except np.linalg.LinAlgError:
        solved = np.linalg.solve(cov, means.T)
    # tr(cov^-1 M^T diag(w) M) = sum_c w_c m_c^T cov^-1 m_c
    return (1.0 - alpha) * float(np.sum(weights * np.sum(means.T * solved, axis=0))), alpha


@register
class HScoreSelector(FeatureProxy):
    name = "hscore"
    display_name = "H-score"
    short_name = "H-score"
    score_label = "H-score"
    table_row = 82

    def measure_labelled(self, data, seed):
        return h_score(data)


@register
class ShrunkHScoreSelector(FeatureProxy):
    name = "hscore_shrunk"
    display_name = "H-score (Ledoit-Wolf shrinkage)"
    short_name = "shrunk H-score"
    score_label = "H-score, shrunk covariance"
    table_row = 82

    def measure_labelled(self, data, seed):
        return shrunk_h_score(data)

    def combine(self, measured):
        scores = {k: v[0] for k, v in measured.items()}
        return scores, {"shrinkage": {k: v[1] for k, v in measured.items()}}

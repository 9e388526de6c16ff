"""LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer
Learning", ICML 2021; the fixed-point algorithm of the JMLR version, "Ranking and
Tuning Pre-trained Models", arXiv 2110.10545).

Each class's one-hot column y is modelled as Bayesian linear regression on the
features F [n, d]: w ~ N(0, I / alpha), y | w ~ N(F w, I / beta). The score is the
maximised log evidence log p(y | F, alpha, beta), divided by n and averaged over the
classes. With F = U S V^T (rank r, sigma_i = s_i^2, z = U^T y) and t = alpha / beta,
the fixed point is gamma = sum sigma / (t + sigma), alpha = gamma / |m|^2,
beta = (n - gamma) / |F m - y|^2 with |m|^2 = sum sigma z^2 / (t + sigma)^2 and
|F m - y|^2 = sum (t z / (t + sigma))^2 + (|y|^2 - |z|^2). All classes iterate at once.

Convergence guard: the iteration stops when t changes by at most `tolerance`
(relative) for every class, or after `max_iterations` (the classes that did not
converge are counted in the details). Degenerate fits are kept finite by floors
relative to |y|^2 (y orthogonal to the features sends alpha to infinity, a perfect fit
sends beta there): they move the fixed point only where it would be at infinity.

The evidence is the exact one, including the (d - r) zero singular values of an n < d
problem (log|A| = sum_i log(alpha + beta sigma_i) + (d - r) log alpha); the features
are used as they are (no centring), as in the paper.
"""

from __future__ import annotations

import numpy as np

from vtab_eval.selection.base import register
from vtab_eval.selection.feature_proxy import FeatureProxy
from vtab_eval.selection.proxy_math import labelled, symmetric_eigen

FLOOR = 1e-12  # relative to |y|^2: the smallest |m|^2, residual and n - gamma allowed


def projected_spectrum(x: np.ndarray, targets: np.ndarray, gram=None):
    """(sigma [r], z [r, k]): the nonzero squared singular values of `x` and the
    targets' coordinates along their left singular vectors, z = U^T targets, from the
    Gram matrix of the smaller side (X^T X may be given as `gram`). With n > d,
    U = X V / sqrt(sigma) is never formed: z = V^T (X^T targets) / sqrt(sigma) costs a
    d x k product instead of an n x d x d one."""
    n, d = x.shape
    if n <= d:
        sigma, u = symmetric_eigen(x @ x.T)
    else:
        sigma, v = symmetric_eigen(x.T @ x if gram is None else gram)
    keep = sigma > max(sigma.max(initial=0.0), 0.0) * max(n, d) * np.finfo(np.float64).eps
    sigma = sigma[keep]
    if n <= d:
        return sigma, u[:, keep].T @ targets
    return sigma, (v[:, keep].T @ (x.T @ targets)) / np.sqrt(sigma)[:, None]


def evidence(x: np.ndarray, targets: np.ndarray, *, gram=None, max_iterations=100, tolerance=1e-3):
    """Per target column of `targets` [n, k]: (log evidence, alpha, beta), maximised by
    the fixed-point iteration, and the number of columns that did not converge (X^T X
    may be given as `gram`)."""
    n, d = x.shape
    sigma, z = projected_spectrum(x, targets, gram)
    z2 = z**2  # [r, k]
    y2 = np.sum(targets**2, axis=0)
    outside = np.maximum(y2 - z2.sum(axis=0), 0.0)  # |y|^2 beyond the features' span
    floor = FLOOR * np.maximum(y2, np.finfo(np.float64).tiny)
    s = sigma[:, None]
    t = np.ones(targets.shape[1])
    converged = np.zeros(targets.shape[1], bool)
    for _ in range(max_iterations):
        gamma = np.sum(s / (t + s), axis=0)
        m2 = np.maximum(np.sum(s * z2 / (t + s) ** 2, axis=0), floor)
        residual = np.maximum(np.sum((t / (t + s)) ** 2 * z2, axis=0) + outside, floor)
        alpha = np.maximum(gamma, floor) / m2
        beta = np.maximum(n - gamma, floor) / residual
        new_t = alpha / beta
        converged = np.abs(new_t - t) <= tolerance * t
        t = new_t
        if converged.all():
            break
    # The evidence at the final (alpha, beta), with |m|^2 and the residual taken there.
    m2 = np.sum(s * z2 / (t + s) ** 2, axis=0)
    residual = np.sum((t / (t + s)) ** 2 * z2, axis=0) + outside
    log_det = np.sum(np.log(alpha + beta * s), axis=0) + (d - len(sigma)) * np.log(alpha)
    log_evidence = (
        0.5 * d * np.log(alpha)
        + 0.5 * n * np.log(beta)
        - 0.5 * beta * residual
        - 0.5 * alpha * m2
        - 0.5 * log_det
        - 0.5 * n * np.log(2 * np.pi)
    )
    return log_evidence, alpha, beta, int(np.sum(~converged))


def logme(features, labels=None, **kwargs) -> tuple[float, int]:
    """(LogME score, classes whose iteration did not converge) of features and labels,
    or of one `Labelled`."""
    data = labelled(features, labels)
    gram = None
    if data.n > data.x.shape[1]:
        # X^T X = n (cov + m m^T) from the covariance other proxies share: a sum of two
        # positive semi-definite terms, rounded no worse than the direct product.
        mean = data.x.mean(axis=0)
        gram = data.n * (data.covariance() + np.outer(mean, mean))
    values, _, _, unconverged = evidence(data.x, data.onehot(), gram=gram, **kwargs)
    return float(np.mean(values) / data.n), unconverged


@register
class LogMESelector(FeatureProxy):
    name = "logme"
    display_name = "LogME"
    short_name = "LogME"
    score_label = "LogME (log evidence per image)"
    table_row = 81

    def measure_labelled(self, data, seed):
        return logme(data)

    def combine(self, measured):
        scores = {k: v[0] for k, v in measured.items()}
        return scores, {"unconverged_classes": {k: v[1] for k, v in measured.items() if v[1]}}

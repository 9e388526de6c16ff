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
`ledoit_wolf_shrinkage`), and shrinks the between-class
covariance by the same (1 - alpha), as Ibrahim et al. do.
"""

from __future__ import annotations

import numpy as np
from sklearn.covariance import ledoit_wolf_shrinkage

from vtab_eval.selection.base import register
from vtab_eval.selection.feature_proxy import FeatureProxy
from vtab_eval.selection.proxy_math import Labelled


def _centred_and_between(features, labels):
    data = Labelled(features, labels)
    centred = data.x - data.x.mean(axis=0)
    means = data.class_means(centred)
    between = (means.T * (data.counts / data.n)) @ means  # cov of E[f|y], biased
    return centred, between


def h_score(features, labels) -> float:
    centred, between = _centred_and_between(features, labels)
    cov = centred.T @ centred / len(centred)
    return float(np.trace(np.linalg.pinv(cov, hermitian=True) @ between))


def shrunk_h_score(features, labels) -> tuple[float, float]:
    """(H_alpha, alpha)."""
    centred, between = _centred_and_between(features, labels)
    alpha = float(ledoit_wolf_shrinkage(centred, assume_centered=True))
    empirical = centred.T @ centred / len(centred)
    mu = np.trace(empirical) / len(empirical)
    if mu == 0:
        return 0.0, alpha  # every image has the same features: nothing to transfer
    cov = (1.0 - alpha) * empirical
    cov[np.diag_indices_from(cov)] += alpha * mu
    solved = np.linalg.solve(cov, (1.0 - alpha) * between)
    return float(np.trace(solved)), alpha


@register
class HScoreSelector(FeatureProxy):
    name = "hscore"
    display_name = "H-score"
    short_name = "H-score"
    score_label = "H-score"
    table_row = 82

    def measure(self, features, labels, seed):
        return h_score(features, labels)


@register
class ShrunkHScoreSelector(FeatureProxy):
    name = "hscore_shrunk"
    display_name = "H-score (Ledoit-Wolf shrinkage)"
    short_name = "shrunk H-score"
    score_label = "H-score, shrunk covariance"
    table_row = 82

    def measure(self, features, labels, seed):
        return shrunk_h_score(features, labels)

    def combine(self, measured):
        scores = {k: v[0] for k, v in measured.items()}
        return scores, {"shrinkage": {k: v[1] for k, v in measured.items()}}

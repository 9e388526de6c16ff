"""SFDA, self-challenging Fisher discriminant analysis (Shao et al., "Not All Models Are
Equal: Predicting Model Transferability in a Self-challenging Fisher Space", ECCV 2022).

1. Regularised FDA: the within-class scatter S_W is shrunk towards mu I,
   S_W(lambda) = (1 - lambda) S_W + lambda mu I with mu = tr(S_W) / d and
   lambda = max(exp(-a sigma_max(S_W)), 1e-10), a = 5 (the paper's adaptive strength);
   the total scatter is shrunk alike and S_B = S_T(lambda) - S_W(lambda). The features
   are projected on the C - 1 leading generalised eigenvectors of (S_B, S_W(lambda)).
2. In that space p(y | x) = softmax_y(x~ . mu~_y - |mu~_y|^2 / 2 + log prior_y).
3. ConfMix, the self-challenge: each image is mixed with the mean of the other classes'
   means, x' = c x + (1 - c) mu_{-y}, by its confidence c, the softened probability
   of its own class (softmax of the probabilities, as the authors' code does).
4. FDA again on the mixed features with the same lambda; the score is the mean
   probability of the true class (the paper's "log is ignored for stability").

The mixing works on a copy: the features given are never changed.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from vtab_eval.selection.base import register
from vtab_eval.selection.feature_proxy import FeatureProxy
from vtab_eval.selection.proxy_math import Labelled, covariance, softmax

STRENGTH = 5.0  # `a` of the adaptive shrinkage


def _shrunk(scatter: np.ndarray, strength: float) -> np.ndarray:
    d = len(scatter)
    out = (1.0 - strength) * scatter
    out[np.diag_indices(d)] += strength * np.trace(scatter) / d
    return out


def fda_probabilities(data: Labelled, x: np.ndarray, strength: float | None):
    """(p(y | x) [n, C], the shrinkage used) of the regularised FDA fitted on `x`."""
    within = data.within_scatter(x)
    if strength is None:
        top = linalg.eigvalsh(within, subset_by_index=[len(within) - 1, len(within) - 1])[0]
        strength = max(float(np.exp(-STRENGTH * top)), 1e-10)
    within = _shrunk(within, strength)
    between = _shrunk(covariance(x), strength) - within
    d, keep = len(within), min(data.num_classes - 1, len(within))
    _, vectors = linalg.eigh(between, within, subset_by_index=[d - keep, d - 1])
    projected, means = x @ vectors, data.class_means(x) @ vectors
    logits = projected @ means.T - 0.5 * np.sum(means**2, axis=1) + np.log(data.counts / data.n)
    return softmax(logits), strength


def sfda(features, labels) -> float:
    data = Labelled(features, labels)
    probabilities, strength = fda_probabilities(data, data.x, None)
    confidence = softmax(probabilities)[np.arange(data.n), data.y][:, None]
    means = data.class_means()
    others = (means.sum(axis=0) - means) / (data.num_classes - 1)
    mixed = confidence * data.x + (1.0 - confidence) * others[data.y]
    probabilities, _ = fda_probabilities(data, mixed, strength)
    return float(np.mean(probabilities[np.arange(data.n), data.y]))


@register
class SfdaSelector(FeatureProxy):
    name = "sfda"
    display_name = "SFDA"
    short_name = "SFDA"
    score_label = "SFDA (mean true-class probability)"
    table_row = 84

    def measure(self, features, labels, seed):
        return sfda(features, labels)

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
from vtab_eval.selection.proxy_math import Labelled, labelled, softmax

STRENGTH = 5.0  # `a` of the adaptive shrinkage
FLOOR = 1e-10  # the smallest shrinkage
# exp(-a s) <= FLOOR once s >= log(1 / FLOOR) / a: from there on the shrinkage is FLOOR.
AT_FLOOR = np.log(1.0 / FLOOR) / STRENGTH


def largest_eigenvalue_bound(scatter: np.ndarray, steps: int = 4) -> float:
    """A lower bound on the largest eigenvalue of a positive semi-definite matrix: the
    Rayleigh quotient after a few power steps from the largest diagonal entry's axis
    (each quotient is at most the eigenvalue, and for such a matrix they only grow)."""
    v = np.zeros(len(scatter))
    v[np.argmax(np.diag(scatter))] = 1.0
    bound = float(np.max(np.diag(scatter)))
    for _ in range(steps):
        w = scatter @ v
        norm = np.linalg.norm(w)
        if norm == 0:
            break
        v = w / norm
        bound = max(bound, float(v @ scatter @ v))
    return bound


def shrinkage(within: np.ndarray) -> float:
    """max(exp(-a sigma_max(S_W)), FLOOR). The eigenvalue is computed only when a lower
    bound does not already put the shrinkage at its floor (with a margin far above the
    eigensolver's rounding), so the value is the same either way."""
    if largest_eigenvalue_bound(within) >= AT_FLOOR * (1.0 + 1e-6):
        return FLOOR
    d = len(within)
    top = linalg.eigvalsh(within, subset_by_index=[d - 1, d - 1], check_finite=False)[0]
    return max(float(np.exp(-STRENGTH * top)), FLOOR)


def _shrunk(scatter: np.ndarray, strength: float) -> np.ndarray:
    d = len(scatter)
    out = (1.0 - strength) * scatter
    out[np.diag_indices(d)] += strength * np.trace(scatter) / d
    return out


def fda_probabilities(data: Labelled, x: np.ndarray, strength: float | None):
    """(p(y | x) [n, C], the shrinkage used) of the regularised FDA fitted on `x`.

    The between-class scatter comes from the class means (C x d), not as the total
    scatter minus the within-class one: S_T = S_W + S_B, so S_T(lambda) - S_W(lambda) =
    (1 - lambda) S_B + lambda tr(S_B) / d I, one n x d x d product instead of two and
    no cancellation."""
    means = data.class_means(x)
    centred_means = means - x.mean(axis=0)
    between = (centred_means.T * (data.counts / data.n)) @ centred_means
    within = data.within_scatter(x)
    if strength is None:
        strength = shrinkage(within)
    within, between = _shrunk(within, strength), _shrunk(between, strength)
    d, keep = len(within), min(data.num_classes - 1, len(within))
    _, vectors = linalg.eigh(between, within, subset_by_index=[d - keep, d - 1], check_finite=False)
    projected, means = x @ vectors, means @ vectors
    logits = projected @ means.T - 0.5 * np.sum(means**2, axis=1) + np.log(data.counts / data.n)
    return softmax(logits), strength


def sfda(features, labels=None) -> float:
    data = labelled(features, labels)
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

    def measure_labelled(self, data, seed):
        return sfda(data)

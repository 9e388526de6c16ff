"""GBC, the Gaussian Bhattacharyya coefficient (Pandy et al., "Transferability
Estimation using Bhattacharyya Class Separability", CVPR 2022).

Each class is a Gaussian with a diagonal covariance in the features' leading `dims`
principal components (64, as in the paper; fewer when the rank is lower), and the
score is minus the sum over ordered pairs of distinct classes of their Bhattacharyya
coefficient exp(-D_B), with

    D_B = 1/8 (mu_i - mu_j)^T S^-1 (mu_i - mu_j) + 1/2 ln( det S / sqrt(det S_i det S_j) ),
    S = (S_i + S_j) / 2,

so classes that overlap less score higher (at most 0). Per-class variances are floored
at `VARIANCE_FLOOR` times the mean variance of the projected features, so a class of
one image (zero variance) or a direction a class does not vary in stays finite.
"""

from __future__ import annotations

import numpy as np

from vtab_eval.selection.base import register
from vtab_eval.selection.feature_proxy import FeatureProxy
from vtab_eval.selection.proxy_math import labelled

VARIANCE_FLOOR = 1e-6


def bhattacharyya_distances(means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """[C, C] D_B between diagonal Gaussians given by rows of `means` and `variances`."""
    mean_var = 0.5 * (variances[:, None, :] + variances[None, :, :])
    diff = means[:, None, :] - means[None, :, :]
    log_var = np.log(variances)
    log_det_ratio = np.log(mean_var).sum(-1) - 0.5 * (log_var.sum(-1)[:, None] + log_var.sum(-1))
    return 0.125 * np.sum(diff**2 / mean_var, axis=-1) + 0.5 * log_det_ratio


def gbc(features, labels=None, dims: int = 64) -> float:
    data = labelled(features, labels)
    x = data.principal_components(dims)
    means = data.class_means(x)
    deviations = x - means[data.y]
    variances = data.class_means(deviations**2)
    floor = VARIANCE_FLOOR * max(float(x.var(axis=0).mean()), np.finfo(np.float64).tiny)
    distances = bhattacharyya_distances(means, np.maximum(variances, floor))
    off_diagonal = ~np.eye(len(means), dtype=bool)
    return float(-np.sum(np.exp(-distances[off_diagonal])))


@register
class GbcSelector(FeatureProxy):
    name = "gbc"
    display_name = "GBC"
    short_name = "GBC"
    score_label = "GBC (minus class overlap)"
    table_row = 83

    def __init__(self, dims: int = 64, include_baseline: bool = False):
        super().__init__(include_baseline)
        self.dims = dims

    def measure_labelled(self, data, seed):
        return gbc(data, dims=self.dims)

    def details(self):
        return {"pca_dims": self.dims, "covariance": "diagonal"}

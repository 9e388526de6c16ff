"""TransRate (Huang et al., "Frustratingly Easy Transferability Estimation", ICML 2022):
the mutual information between features and labels, estimated by coding rates,

    TransRate = R(Z, eps) - R(Z, eps | Y),
    R(Z, eps) = 1/2 log det(I_d + d / (n eps^2) Z^T Z),
    R(Z, eps | Y) = sum_c (n_c / n) R(Z_c, eps),

with Z the centred features [n, d] and Z_c the rows of class c (centred with the
whole set, as in the paper). eps^2 is `distortion` (1e-4 by default). Log-determinants
come from the smaller Gram matrix (Sylvester's identity) by Cholesky, so n < d costs
an n x n factorisation.
"""

from __future__ import annotations

import numpy as np

from vtab_eval.selection.base import register
from vtab_eval.selection.feature_proxy import FeatureProxy
from vtab_eval.selection.proxy_math import labelled, logdet_identity_plus, logdet_identity_plus_gram


def coding_rate(z: np.ndarray, d: int, distortion: float) -> float:
    return 0.5 * logdet_identity_plus(z, d / (len(z) * distortion))


def transrate(features, labels=None, distortion: float = 1e-4) -> float:
    data = labelled(features, labels)
    z = data.centred()
    n, d = z.shape
    if d <= n:  # Z^T Z / n is the covariance, which other proxies share
        whole = 0.5 * logdet_identity_plus_gram(data.covariance(), d / distortion)
    else:
        whole = coding_rate(z, d, distortion)
    per_class = sum(
        count / data.n * coding_rate(z[data.y == c], d, distortion)
        for c, count in enumerate(data.counts)
    )
    return float(whole - per_class)


@register
class TransRateSelector(FeatureProxy):
    name = "transrate"
    display_name = "TransRate"
    short_name = "TransRate"
    score_label = "TransRate (nats)"
    table_row = 83

    def __init__(self, distortion: float = 1e-4, include_baseline: bool = False):
        super().__init__(include_baseline)
        self.distortion = distortion

    def measure_labelled(self, data, seed):
        return transrate(data, distortion=self.distortion)

    def details(self):
        return {"distortion": self.distortion}

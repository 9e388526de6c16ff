"""NCTI, the neural collapse transferability index (Wang et al., "How Far Pre-trained
Models Are from Neural Collapse on the Target Dataset Informs their Transferability",
ICCV 2023): how close a module's features of the task are to the geometry a network
fine-tuned on it reaches at the end of training, by the paper's three neural-collapse
phenomena, each measured in the features' leading `dims` principal components:

- variability collapse: minus Papyan et al.'s NC1, tr(S_W S_B^+) / C (within-class
  scatter against the pseudo-inverse of the between-class scatter);
- simplex-encoded-label geometry: the class means (centred) of a collapsed network
  span C - 1 directions with equal singular values; measured as the nuclear norm of
  the centred class-mean matrix over sqrt(C - 1) times its Frobenius norm, which is 1
  exactly for that geometry and smaller the more unequal the spectrum;
- nearest-centre classification: the mean log-probability of the true class under a
  softmax of minus half the squared distances to the class means, the distances in
  units of the mean within-class variance (so the term does not depend on scale).

As in the paper, each term is min-max normalised across the pool's modules and the
score is their sum (between 0 and 3), so NCTI ranks modules within one pool and its
value means nothing for a module alone. These measures are this project's reading of
the paper's definitions; the raw terms are written in the details.
"""

from __future__ import annotations

import numpy as np

from vtab_eval.selection.base import register
from vtab_eval.selection.feature_proxy import FeatureProxy
from vtab_eval.selection.proxy_math import labelled, log_softmax

TERMS = ("variability", "geometry", "nearest_centre")


def ncti_terms(features, labels=None, dims: int = 64) -> dict[str, float]:
    data = labelled(features, labels)
    x = data.principal_components(dims)  # centred
    means = data.class_means(x)
    within = data.within_scatter(x)
    between = (means.T * (data.counts / data.n)) @ means
    nc1 = np.trace(within @ np.linalg.pinv(between, hermitian=True)) / data.num_classes
    singular = np.linalg.svd(means - means.mean(axis=0), compute_uv=False)
    frobenius = np.sqrt(np.sum(singular**2))
    geometry = singular.sum() / (np.sqrt(data.num_classes - 1) * frobenius) if frobenius else 0.0
    scale = max(np.trace(within) / x.shape[1], np.finfo(np.float64).tiny)
    squared = np.sum((x[:, None, :] - means[None]) ** 2, axis=-1) / scale
    log_p = log_softmax(-0.5 * squared)[np.arange(data.n), data.y]
    return {
        "variability": -float(nc1),
        "geometry": float(geometry),
        "nearest_centre": float(log_p.mean()),
    }


def normalised_sum(terms: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per module: the sum over terms of (value - min) / (max - min) across modules (a
    term equal for every module adds nothing)."""
    scores = dict.fromkeys(terms, 0.0)
    for term in TERMS:
        values = np.array([t[term] for t in terms.values()])
        span = values.max() - values.min()
        for module, value in zip(terms, values, strict=True):
            scores[module] += float((value - values.min()) / span) if span > 0 else 0.0
    return scores


@register
class NctiSelector(FeatureProxy):
    name = "ncti"
    display_name = "NCTI"
    short_name = "NCTI"
    score_label = "NCTI (normalised over the pool)"
    table_row = 84

    def __init__(self, dims: int = 64, include_baseline: bool = False):
        super().__init__(include_baseline)
        self.dims = dims

    def measure_labelled(self, data, seed):
        return ncti_terms(data, dims=self.dims)

    def combine(self, measured):
        return normalised_sum(measured), {"terms": measured}

    def details(self):
        return {"pca_dims": self.dims}

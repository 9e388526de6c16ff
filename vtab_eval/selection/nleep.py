"""NLEEP (Li et al., "Ranking Neural Checkpoints", CVPR 2021): LEEP with the source
classifier replaced by a Gaussian mixture fitted on the task's features.

The features are first reduced by PCA to the fewest components keeping
`variance_kept` of their variance (80%, as Li et al. do: published results differ
with and without this step, and this project reduces). A mixture of
`components_per_class` x C diagonal Gaussians (scikit-learn's `GaussianMixture`,
seeded by the run's seed; at most n / 2 components) gives each image's posterior
over components p(z | x), and

    NLEEP = 1/n sum_i log sum_z p(y_i | z) p(z | x_i),
    p(y | z) = sum_{i: y_i = y} p(z | x_i) / sum_i p(z | x_i).

Diagonal covariances keep the fit seconds per module; the paper's full covariances
cost d^3 per component and iteration.
"""

from __future__ import annotations

from sklearn.mixture import GaussianMixture

from vtab_eval.selection.base import register
from vtab_eval.selection.feature_proxy import FeatureProxy
from vtab_eval.selection.proxy_math import labelled, leep_from_posteriors


def nleep(features, labels=None, seed=0, variance_kept=0.8, components_per_class=5) -> float:
    data = labelled(features, labels)
    x = data.principal_components(variance_kept)
    components = max(1, min(components_per_class * data.num_classes, data.n // 2))
    mixture = GaussianMixture(components, covariance_type="diag", random_state=seed)
    posteriors = mixture.fit(x).predict_proba(x)
    return leep_from_posteriors(posteriors, data.y, data.num_classes)


@register
class NleepSelector(FeatureProxy):
    name = "nleep"
    display_name = "NLEEP"
    short_name = "NLEEP"
    score_label = "NLEEP (mean log-likelihood)"
    table_row = 86

    def measure_labelled(self, data, seed):
        return nleep(data, seed=seed)

    def details(self):
        return {"pca_variance_kept": 0.8, "components_per_class": 5, "covariance": "diag"}

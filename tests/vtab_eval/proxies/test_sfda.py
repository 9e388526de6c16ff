"""SFDA's Fisher step against scikit-learn's linear discriminant analysis."""

import numpy as np
import pytest
from scipy import linalg
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from tests.vtab_eval.proxies.conftest import clustered
from vtab_eval.selection import sfda
from vtab_eval.selection.proxy_math import Labelled, softmax


def test_unshrunk_fisher_step_is_lda_posterior():
    # With no shrinkage and C - 1 = d Fisher directions, the projected nearest-mean rule
    # is LDA's posterior (scikit-learn's eigen solver, same priors and covariance).
    x, labels = clustered(n=90, d=2, classes=3, spread=1.0)
    data = Labelled(x, labels)
    ours, _ = sfda.fda_probabilities(data, data.x, 1e-300)
    lda = LinearDiscriminantAnalysis(solver="eigen").fit(data.x, labels)
    np.testing.assert_allclose(ours, lda.predict_proba(data.x), rtol=1e-6, atol=1e-9)


def test_separable_classes_score_near_one_and_noise_lower():
    x, labels = clustered(n=60, d=8, spread=0.05)
    noise = np.random.default_rng(0).normal(size=x.shape)
    assert sfda.sfda(x, labels) > 0.95
    assert sfda.sfda(noise, labels) < sfda.sfda(x, labels)


def _fda_as_first_written(data, x, strength):
    """The Fisher step before the between-class scatter came from the class means: the
    total scatter shrunk minus the within-class one shrunk."""

    def shrunk(scatter):
        out = (1.0 - strength) * scatter
        out[np.diag_indices(len(scatter))] += strength * np.trace(scatter) / len(scatter)
        return out

    within = shrunk(data.within_scatter(x))
    centred = x - x.mean(0)
    between = shrunk(centred.T @ centred / len(x)) - within
    d, keep = len(within), min(data.num_classes - 1, len(within))
    _, vectors = linalg.eigh(between, within, subset_by_index=[d - keep, d - 1])
    projected, means = x @ vectors, data.class_means(x) @ vectors
    logits = projected @ means.T - 0.5 * np.sum(means**2, axis=1) + np.log(data.counts / data.n)
    return softmax(logits)


@pytest.mark.parametrize("n,d,spread", [(90, 6, 1.0), (60, 8, 0.3), (15, 40, 1.0)])
@pytest.mark.parametrize("strength", [1e-10, 0.3])
def test_fisher_step_from_the_class_means_is_the_difference_of_scatters(n, d, spread, strength):
    x, labels = clustered(n=n, d=d, classes=3, spread=spread, seed=8)
    data = Labelled(x, labels)
    ours, _ = sfda.fda_probabilities(data, data.x, strength)
    np.testing.assert_allclose(ours, _fda_as_first_written(data, data.x, strength), atol=1e-8)


@pytest.mark.parametrize("scale", [0.01, 0.3, 0.9, 1.0, 3.0, 100.0])
def test_shrinkage_from_the_bound_is_the_eigenvalues(scale):
    # Around the floor's threshold (sigma_max = log(1e10) / 5 = 4.6) and far from it.
    x, labels = clustered(n=60, d=8, spread=1.0)
    within = Labelled(x * scale, labels).within_scatter()
    top = np.linalg.eigvalsh(within)[-1]
    assert sfda.largest_eigenvalue_bound(within) <= top * (1 + 1e-12)
    expected = max(np.exp(-sfda.STRENGTH * top), 1e-10)
    assert sfda.shrinkage(within) == pytest.approx(expected, rel=1e-12)  # eigensolvers differ

"""SFDA's Fisher step against scikit-learn's linear discriminant analysis."""

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from tests.vtab_eval.proxies.conftest import clustered
from vtab_eval.selection import sfda
from vtab_eval.selection.proxy_math import Labelled


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

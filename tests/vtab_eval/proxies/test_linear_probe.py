"""The linear probe on known cases and against scikit-learn's float64 pipeline."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.vtab_eval.proxies.conftest import clustered
from vtab_eval.selection import linear_probe


def test_linearly_separable_classes_are_all_found():
    x, labels = clustered(n=60, d=4, spread=0.05)
    assert linear_probe.probe_accuracy(x, labels) == 1.0


def test_labels_independent_of_features_score_near_chance():
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(300, 5)), rng.integers(0, 2, 300)
    assert abs(linear_probe.probe_accuracy(x, labels) - 0.5) < 0.15


def test_a_class_of_one_image_falls_back_on_plain_folds():
    x, labels = clustered(n=31, d=4, spread=0.05)
    labels = labels.copy()
    labels[-1] = 7
    assert 0.8 < linear_probe.probe_accuracy(x, labels) <= 1.0


def _probe_as_first_written(x, labels, seed=0, folds=3):
    """scikit-learn's cross-validated pipeline in float64 on every feature."""
    split = StratifiedKFold if np.bincount(labels).min() >= folds else KFold
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=100, tol=1e-3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cv = split(folds, shuffle=True, random_state=seed)
        predicted = cross_val_predict(model, x.astype(np.float64), labels, cv=cv)
    return float(np.mean(predicted == labels))


@pytest.mark.parametrize("spread,seed", [(0.5, 0), (1.5, 1), (3.0, 2), (6.0, 3)])
def test_float32_fit_without_constant_features_keeps_the_float64_accuracy(spread, seed):
    x, labels = clustered(n=300, d=40, classes=5, spread=spread, seed=seed)
    x[:, [3, 17]] = 2.0  # dead units
    expected = _probe_as_first_written(x, labels, seed)
    assert linear_probe.probe_accuracy(x, labels, seed) == expected
    assert linear_probe.probe_accuracy(x, labels, seed, dtype=np.float64) == expected


def test_features_constant_everywhere_predict_by_the_intercepts():
    labels = np.array([0] * 20 + [1] * 10)
    assert linear_probe.probe_accuracy(np.ones((30, 3)), labels) == pytest.approx(20 / 30)

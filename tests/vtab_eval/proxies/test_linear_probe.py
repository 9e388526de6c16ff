"""The linear probe against scikit-learn's own cross-validation on a separable case."""

import numpy as np

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

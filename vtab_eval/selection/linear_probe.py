"""A linear probe: cross-validated accuracy of a logistic regression on the frozen
features (the paper's section 5 names it as the obvious alternative to kNN).

Features are standardised per column (inside each fold), the regression is
scikit-learn's multinomial `LogisticRegression` with L2 strength C = 1 (lbfgs, at
most 100 iterations to a gradient tolerance of 1e-3: a ranking needs no more), and
the score is the accuracy on held-out images of a `folds`-fold split (shuffled with
the run's seed; stratified when every class has at least `folds` images, plain
otherwise), pooled over folds.

For speed, each fold's regression is fitted on float32 features (standardised in
float64 first): its cost is two thin products with the features per iteration, which
float32 halves, while a prediction changes only for an image within rounding of a
decision boundary (tests/vtab_eval/proxies/test_linear_probe.py checks the accuracy
against the float64 fit). Features constant on a fold's training images are left out
of it: standardised, they are zero (up to rounding), so their weights stay zero.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from vtab_eval.selection.base import register
from vtab_eval.selection.feature_proxy import FeatureProxy
from vtab_eval.selection.proxy_math import labelled


def _fold_predictions(x, y, train, test, max_iter: int, dtype) -> np.ndarray:
    """The regression fitted on `train`'s images, predicting `test`'s."""
    varying = np.ptp(x[train], axis=0) > 0
    varying[0] |= not varying.any()  # a column of zeros: the intercepts alone
    scaler = StandardScaler().fit(x[train][:, varying])
    model = LogisticRegression(C=1.0, max_iter=max_iter, tol=1e-3)
    model.fit(scaler.transform(x[train][:, varying]).astype(dtype), y[train])
    return model.predict(scaler.transform(x[test][:, varying]).astype(dtype))


def probe_accuracy(features, labels=None, seed=0, folds=3, max_iter=100, dtype=np.float32) -> float:
    data = labelled(features, labels)
    if data.n < folds:
        raise ValueError(f"a {folds}-fold probe needs at least {folds} images, got {data.n}")
    split = StratifiedKFold if data.counts.min() >= folds else KFold
    predicted = np.empty_like(data.y)
    with warnings.catch_warnings():  # the iteration cap is deliberate
        warnings.simplefilter("ignore", ConvergenceWarning)
        for train, test in split(folds, shuffle=True, random_state=seed).split(data.x, data.y):
            predicted[test] = _fold_predictions(data.x, data.y, train, test, max_iter, dtype)
    return float(np.mean(predicted == data.y))


@register
class LinearProbeSelector(FeatureProxy):
    name = "linear_probe"
    display_name = "Linear probe (logistic regression)"
    short_name = "linear probe"
    score_label = "cross-validated accuracy"
    table_row = 86

    def measure_labelled(self, data, seed):
        return probe_accuracy(data, seed=seed)

    def details(self):
        return {"folds": 3, "C": 1.0}

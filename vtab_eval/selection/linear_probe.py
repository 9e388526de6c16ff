"""A linear probe: cross-validated accuracy of a logistic regression on the frozen
features (the paper's section 5 names it as the obvious alternative to kNN).

Features are standardised per column (inside each fold), the regression is
scikit-learn's multinomial `LogisticRegression` with L2 strength C = 1 (lbfgs, at
most 100 iterations to a gradient tolerance of 1e-3: a ranking needs no more), and
the score is the accuracy on held-out images of a `folds`-fold split (shuffled with
the run's seed; stratified when every class has at least `folds` images, plain
otherwise), pooled over folds.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vtab_eval.selection.base import register
from vtab_eval.selection.feature_proxy import FeatureProxy
from vtab_eval.selection.proxy_math import labelled


def probe_accuracy(features, labels=None, seed=0, folds=3, max_iter=100) -> float:
    data = labelled(features, labels)
    if data.n < folds:
        raise ValueError(f"a {folds}-fold probe needs at least {folds} images, got {data.n}")
    split = StratifiedKFold if data.counts.min() >= folds else KFold
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=max_iter, tol=1e-3))
    cv = split(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # the iteration cap is deliberate
        warnings.simplefilter("ignore", ConvergenceWarning)
        predicted = cross_val_predict(model, data.x, data.y, cv=cv)
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

"""Logistic heads on frozen features: the cheap member of an ensemble, with no
fine-tuning (selection/ensemble.py's `ensemble_heads`).

A head is scikit-learn's multinomial ``LogisticRegression`` on the module's features,
standardised per column (``StandardScaler``, fitted on the head's training set), run
as the protocol runs a fine-tuning: its L2 strength C is chosen from ``C_GRID`` by the
validation NLL of a head trained on train800 and evaluated on val200 (the first of
equals), whose val200 probabilities are the member's validation run; the head with that
C is then trained on train800val200 and its test probabilities are the member's final
run. lbfgs runs to scikit-learn's default tolerance, at most ``MAX_ITER`` iterations.

A class missing from a head's training set gets probability zero: the greedy
combination clips it (finetune/ensemble.py).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vtab_eval.finetune import ensemble

C_GRID = (0.01, 0.1, 1.0)
MAX_ITER = 500


def _log_probs(train, evaluate, c: float, num_classes: int) -> np.ndarray:
    """``[n, num_classes]`` log-probabilities on ``evaluate``'s features of a head fitted
    on ``train`` ((features, labels) pairs)."""
    head = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=MAX_ITER))
    with warnings.catch_warnings():  # a cap reached is a head a little less fitted
        warnings.simplefilter("ignore", ConvergenceWarning)
        head.fit(*train)
    probs = np.zeros((len(evaluate[0]), num_classes))
    probs[:, head.classes_] = head.predict_proba(evaluate[0])
    with np.errstate(divide="ignore"):
        return np.log(probs)


def head_runs(train800, val200, test, num_classes: int) -> tuple[ensemble.MemberRuns, dict]:
    """One module's member runs from its features of the three splits ((features,
    labels) pairs), and what was chosen: C, each C's validation NLL, the seconds."""
    start = time.perf_counter()
    if len(np.unique(train800[1])) < 2:
        raise ValueError("a logistic head needs at least two classes in train800")
    val_nll, val_runs = {}, {}
    for c in C_GRID:
        val_runs[c] = _log_probs(train800, val200, c, num_classes)
        truth = ensemble.true_class(np.exp(val_runs[c]), val200[1])
        val_nll[c] = ensemble.nll(truth)
    best = min(C_GRID, key=lambda c: val_nll[c])  # the first of equals
    both = (np.concatenate([train800[0], val200[0]]), np.concatenate([train800[1], val200[1]]))
    test_run = _log_probs(both, test, best, num_classes)
    runs = ensemble.MemberRuns(
        val_runs[best][None], np.asarray(val200[1]), test_run[None], np.asarray(test[1])
    )
    details = {"C": best, "val_nll": {str(c): v for c, v in val_nll.items()}}
    return runs, {**details, "seconds": time.perf_counter() - start}

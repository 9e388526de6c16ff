"""LEEP (Nguyen et al., "LEEP: A New Measure to Evaluate Transferability of Learned
Representations", ICML 2020) and NCE (Tran et al., "Transferability and Hardness of
Supervised Classification Tasks", ICCV 2019): scores of a module's own source
classifier on the task's images, so they need a module exported with its upstream head.

In a hub tree only the upstream classifier (hub_export kind `classifier`: B with its
head over the upstream labels) has one; the experts are exported as feature vectors
without their heads. So these selectors score B alone (through the classifier module)
and leave every other module unscored: they say how well B's upstream labels
explain the task, beside the proxies that rank the whole pool, and they are not
judged as pool rankings (`is_proxy` is off).

    LEEP = 1/n sum_i log sum_z p(y_i | z) theta(x_i)_z   (the shared `leep_from_posteriors`)
    NCE  = -H(Y | Z) with Z = argmax_z theta(x)_z, from the empirical joint of (y, z).

theta is the classifier's softmax, or for a sigmoid (multi-label) head its sigmoids
renormalised to sum to one.
"""

from __future__ import annotations

import math

import numpy as np

from vtab_eval.pool.expert_pool import PoolError
from vtab_eval.selection.base import Context, Selector, register
from vtab_eval.selection.domain import log_probabilities
from vtab_eval.selection.proxy_math import Labelled, leep_from_posteriors


def source_posteriors(logits: np.ndarray, activation: str) -> np.ndarray:
    probs = np.exp(log_probabilities(np.asarray(logits, np.float64), activation))
    return probs / np.maximum(probs.sum(axis=1, keepdims=True), np.finfo(float).tiny)


def leep(logits, labels, activation: str = "softmax") -> float:
    data = Labelled(logits, labels)
    return leep_from_posteriors(source_posteriors(data.x, activation), data.y, data.num_classes)


def nce(logits, labels) -> float:
    data = Labelled(logits, labels)
    source = np.unique(np.argmax(data.x, axis=1), return_inverse=True)[1]
    joint = np.zeros((data.num_classes, source.max() + 1))
    np.add.at(joint, (data.y, source), 1.0 / data.n)
    marginal = joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    return float(np.sum(joint[nonzero] * np.log((joint / marginal)[nonzero])))


class _SourceHeadScore(Selector):
    needs = "classifier"
    uses_labels = True
    table_row = 87

    def measure(self, logits, labels, activation: str) -> float:
        raise NotImplementedError

    def candidates(self, pool):
        return pool.ids  # B is the one module these can score, so always a candidate

    def score(self, task, ctx: Context):
        classifier = ctx.pool.upstream_classifier
        if classifier is None:
            raise PoolError(
                f"{self.short_name} needs a module with its source head: the upstream "
                "classifier (hub_export kind 'classifier'), which this pool does not have"
            )
        logits, labels, forward = ctx.store.outputs(classifier.handle, task, ctx.split)
        value = self.measure(logits, labels, classifier.activation)
        scores = {e.id: (value if e.is_baseline else -math.inf) for e in ctx.pool.experts}
        details = {"classifier": classifier.handle, "split": ctx.split, "scored": "baseline"}
        return scores, details, forward


@register
class LeepSelector(_SourceHeadScore):
    name = "leep"
    display_name = "LEEP (B's upstream head)"
    short_name = "LEEP"

    def measure(self, logits, labels, activation):
        return leep(logits, labels, activation)


@register
class NceSelector(_SourceHeadScore):
    name = "nce"
    display_name = "NCE (B's upstream head)"
    short_name = "NCE"

    def measure(self, logits, labels, activation):
        return nce(logits, labels)

"""Domain prediction: the expert the EPN finds most likely for the task's images
(paper, section 5 and appendix A): the highest geometric mean of the EPN's predictive
probability over the images, computed as the mean log-probability.

The EPN is a classification module whose `labels` are expert names; a pool expert is
matched by its `name` (the hierarchy node), so a full and an adapter expert of the same
node share a score and the tie goes to the first in pool order. Experts the EPN does not
know (the baseline among them) score -inf and are never picked. Labels are not used.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from vtab_eval.pool.expert_pool import PoolError
from vtab_eval.selection.base import Context, Selector, register


def log_probabilities(logits: np.ndarray, activation: str) -> np.ndarray:
    """Per-image log-probabilities of each output: log-softmax or log-sigmoid."""
    logits = tf.constant(logits, tf.float64)
    if activation == "softmax":
        return tf.nn.log_softmax(logits, axis=-1).numpy()
    if activation == "sigmoid":
        return tf.math.log_sigmoid(logits).numpy()
    raise ValueError(f"unknown activation {activation!r}; expected softmax or sigmoid")


@register
class DomainPredictionSelector(Selector):
    name = "domain"
    display_name = "Domain Prediction"
    needs = "epn"
    table_row = 30

    def score(self, task, ctx: Context):
        epn = ctx.pool.epn
        if epn is None:
            raise PoolError("domain prediction needs an EPN module (kind 'epn') in the pool")
        logits, _, forward = ctx.store.outputs(epn.handle, task, ctx.split)
        labels = epn.labels
        if logits.shape[1] != len(labels):
            raise PoolError(f"{epn.handle}: {logits.shape[1]} outputs but {len(labels)} labels")
        # log of the geometric mean over images = mean of the log-probabilities.
        mean_log = log_probabilities(logits, epn.activation).mean(axis=0)
        by_name = dict(zip(labels, mean_log.tolist(), strict=True))
        scores = {e.id: by_name.get(e.name, -math.inf) for e in ctx.pool.experts}
        if not any(math.isfinite(scores[c]) for c in self.candidates(ctx.pool)):
            raise PoolError(f"{epn.handle}: no EPN label matches a pool expert name")
        return scores, {"epn": epn.handle, "split": ctx.split}, forward

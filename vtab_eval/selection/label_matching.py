"""Label matching (paper, section 5 and appendix B): predict upstream labels on the
task's images with the upstream classifier (B with its head), average the per-image
label distributions into the task's distribution q, and score each expert by
-KL(q || prior_e), where prior_e is the empirical upstream label distribution of the
images the expert was trained on (`label_distribution` in its expert_info.json).

Choices where the paper is terse, written down:
- Label space: the labels named in the experts' priors (the upstream leaf labels); B's
  outputs for other hierarchy nodes are ignored.
- Per-image distribution: for a sigmoid (multi-label) head, the sigmoid scores of those
  labels renormalised to sum to one; for a softmax head, the softmax over all outputs
  restricted to those labels and renormalised.
- Priors are zero outside the expert's slice, which makes the KL infinite for any task
  touching another label; each prior is smoothed as (1 - eps) prior + eps uniform
  (eps = `smoothing`, 1e-3 by default) so the KL stays finite and still ranks experts
  mostly by how much of q falls inside their slice.
"""

from __future__ import annotations

import numpy as np

from vtab_eval.pool.expert_pool import PoolError
from vtab_eval.selection.base import Context, Selector, register
from vtab_eval.selection.domain import log_probabilities


def task_distribution(logits: np.ndarray, activation: str, keep: np.ndarray) -> np.ndarray:
    """q: mean over images of the per-image distribution over the `keep` outputs."""
    probs = np.exp(log_probabilities(logits, activation))[:, keep]
    probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-300)
    return probs.mean(axis=0)


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats; terms with p = 0 contribute nothing."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    mask = p > 0
    return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(q[mask]))))


def smoothed(prior: np.ndarray, eps: float) -> np.ndarray:
    prior = np.asarray(prior, np.float64) / np.sum(prior)
    return (1.0 - eps) * prior + eps / len(prior)


@register
class LabelMatchingSelector(Selector):
    name = "label"
    display_name = "Label Matching"
    needs = "classifier"
    table_row = 40

    @classmethod
    def from_config(cls, selection) -> LabelMatchingSelector:
        return cls(selection.label_smoothing, selection.include_baseline)

    def __init__(self, smoothing: float = 1e-3, include_baseline: bool = False):
        super().__init__(include_baseline)
        if not 0.0 < smoothing < 1.0:
            raise ValueError(f"label matching smoothing must be in (0, 1), got {smoothing}")
        self.smoothing = smoothing

    def score(self, task, ctx: Context):
        classifier = ctx.pool.upstream_classifier
        if classifier is None:
            raise PoolError(
                "label matching needs the upstream classifier (a module of kind 'classifier') in the pool"
            )
        priors = {e.id: e.label_distribution() for e in ctx.pool.experts}
        label_space = sorted({label for prior in priors.values() for label in prior})
        position = {label: i for i, label in enumerate(classifier.labels)}
        missing = [label for label in label_space if label not in position]
        if missing:
            raise PoolError(
                f"{classifier.handle}: labels {missing[:5]} of the expert priors are not "
                "among the classifier's labels"
            )
        logits, _, forward = ctx.store.outputs(classifier.handle, task, ctx.split)
        if logits.shape[1] != len(position):
            raise PoolError(
                f"{classifier.handle}: {logits.shape[1]} outputs but {len(position)} labels"
            )
        keep = np.array([position[label] for label in label_space])
        q = task_distribution(logits, classifier.activation, keep)
        kl = {}
        for expert_id, prior in priors.items():
            vector = np.array([prior.get(label, 0.0) for label in label_space])
            kl[expert_id] = kl_divergence(q, smoothed(vector, self.smoothing))
        details = {
            "kl": kl,
            "classifier": classifier.handle,
            "smoothing": self.smoothing,
            "split": ctx.split,
        }
        return {k: -v for k, v in kl.items()}, details, forward

"""The common shape of the transferability proxies that score each module from its
cached embedding of the task (no new forward pass): `measure(features, labels)` per
module, and optionally `combine` over the pool (a proxy whose terms are normalised
across the modules, such as NCTI). A proxy is then one small class in its own file.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from vtab_eval.selection.base import Context, Selector


class FeatureProxy(Selector):
    """A performance proxy computed from each module's features of the task's images."""

    needs = "features"
    uses_labels = True
    is_proxy = True
    table_row: ClassVar[int] = 85

    def measure(self, features: np.ndarray, labels: np.ndarray, seed: int) -> Any:
        """The module's score (a float), or what `combine` needs."""
        raise NotImplementedError

    def combine(self, measured: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        """(score per module, details) from every module's `measure`."""
        return {k: float(v) for k, v in measured.items()}, {}

    def details(self) -> dict[str, Any]:
        """The proxy's settings, written beside its scores."""
        return {}

    def score(self, task, ctx: Context):
        measured, forward, num_examples = {}, 0.0, 0
        for expert in ctx.pool.experts:
            features, labels, seconds = ctx.store.outputs(expert.handle, task, ctx.split)
            forward += seconds
            num_examples = len(labels)
            try:
                measured[expert.id] = self.measure(features, labels, ctx.seed)
            except (ValueError, np.linalg.LinAlgError) as e:
                raise ValueError(
                    f"{self.short_name or self.name} on {expert.id}'s features of {task.name}: {e}"
                ) from None
        scores, extra = self.combine(measured)
        details = {"split": ctx.split, "num_examples": num_examples, **self.details(), **extra}
        return scores, details, forward

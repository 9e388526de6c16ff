"""The common shape of the transferability proxies that score each module from its
cached embedding of the task (no new forward pass): `measure_labelled(data, seed)` per
module, and optionally `combine` over the pool (a proxy whose terms are normalised
across the modules, such as NCTI). A proxy is then one small class in its own file.

`select_together` scores a pool with several proxies in one pass over the modules:
each module's features are checked and copied once, and what proxies derive alike
(the covariance, its eigendecomposition, the nearest neighbours) is computed once and
shared (`proxy_math.Labelled`); a proxy alone (`select`) computes the same values the
same way.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, ClassVar

import numpy as np

from vtab_eval.selection.base import Context, SelectionResult, Selector, best
from vtab_eval.selection.proxy_math import Labelled


@contextlib.contextmanager
def _naming(what: str, expert, task):
    """A bad input or a failed factorisation as one line naming the module and task."""
    try:
        yield
    except (ValueError, np.linalg.LinAlgError) as e:
        raise ValueError(f"{what} on {expert.id}'s features of {task.name}: {e}") from None


class FeatureProxy(Selector):
    """A performance proxy computed from each module's features of the task's images."""

    needs = "features"
    uses_labels = True
    is_proxy = True
    table_row: ClassVar[int] = 85

    def measure(self, features: np.ndarray, labels: np.ndarray, seed: int) -> Any:
        """The module's score (a float), or what `combine` needs."""
        return self.measure_labelled(Labelled(features, labels), seed)

    def measure_labelled(self, data: Labelled, seed: int) -> Any:
        """`measure` of the module's features as a `Labelled` (possibly shared)."""
        raise NotImplementedError

    def combine(self, measured: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        """(score per module, details) from every module's `measure`."""
        return {k: float(v) for k, v in measured.items()}, {}

    def details(self) -> dict[str, Any]:
        """The proxy's settings, written beside its scores."""
        return {}

    @property
    def _what(self) -> str:
        return self.short_name or self.name

    def score(self, task, ctx: Context):
        measured, forward, num_examples = {}, 0.0, 0
        for expert in ctx.pool.experts:
            features, labels, seconds = ctx.store.outputs(expert.handle, task, ctx.split)
            forward += seconds
            num_examples = len(labels)
            with _naming(self._what, expert, task):
                measured[expert.id] = self.measure_labelled(Labelled(features, labels), ctx.seed)
        scores, details = self._combined(measured, ctx.split, num_examples)
        return scores, details, forward

    def _combined(self, measured, split: str, num_examples: int):
        scores, extra = self.combine(measured)
        details = {"split": split, "num_examples": num_examples, **self.details(), **extra}
        return scores, details


def select_together(proxies: list[FeatureProxy], task, ctx: Context):
    """({name: SelectionResult}, {name: CPU seconds}, shared CPU seconds): each proxy's
    `select` of the pool, in one pass over the modules. A proxy's seconds are its own
    arithmetic; what the proxies share (checking and copying the features, their
    covariance, its eigendecomposition, the nearest neighbours) is counted once, apart."""
    measured = {p.name: {} for p in proxies}
    cpu, wall = dict.fromkeys(measured, 0.0), dict.fromkeys(measured, 0.0)
    shared_cpu, forward, num_examples = 0.0, 0.0, 0
    for expert in ctx.pool.experts:
        features, labels, seconds = ctx.store.outputs(expert.handle, task, ctx.split)
        forward += seconds
        num_examples = len(labels)
        start = time.process_time()
        with _naming("the proxies", expert, task):
            data = Labelled(features, labels)
        shared_cpu += time.process_time() - start
        for proxy in proxies:
            kept_cpu, kept_wall = data.shared_seconds, data.shared_wall_seconds
            before, wall_before = time.process_time(), time.perf_counter()
            with _naming(proxy._what, expert, task):
                measured[proxy.name][expert.id] = proxy.measure_labelled(data, ctx.seed)
            cpu[proxy.name] += time.process_time() - before - (data.shared_seconds - kept_cpu)
            wall[proxy.name] += (
                time.perf_counter() - wall_before - (data.shared_wall_seconds - kept_wall)
            )
        shared_cpu += data.shared_seconds
    results = {}
    for proxy in proxies:
        scores, details = proxy._combined(measured[proxy.name], ctx.split, num_examples)
        results[proxy.name] = SelectionResult(
            selector=proxy.name,
            task=task.spec,
            scores={k: float(v) for k, v in scores.items()},
            pick=best(scores, proxy.candidates(ctx.pool)),
            seconds=wall[proxy.name],
            cost_seconds=wall[proxy.name] + forward,
            details=details,
        )
    return results, cpu, shared_cpu

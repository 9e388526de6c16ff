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
from concurrent import futures
from typing import Any, ClassVar

import numpy as np
import threadpoolctl

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


def _score_module(proxies: list[FeatureProxy], item, task, seed: int, clock):
    """One module (`item`: the module, its features and labels) scored by every proxy,
    sharing its `Labelled`: ({proxy: measure}, {proxy: CPU seconds}, {proxy: wall
    seconds}, shared CPU seconds), the CPU seconds read from `clock`."""
    expert, features, labels = item
    measured, cpu, wall = {}, {}, {}
    start = clock()
    with _naming("the proxies", expert, task):
        data = Labelled(features, labels, clock=clock)
    shared_cpu = clock() - start
    for proxy in proxies:
        kept_cpu, kept_wall = data.shared_seconds, data.shared_wall_seconds
        before, wall_before = clock(), time.perf_counter()
        with _naming(proxy._what, expert, task):
            measured[proxy.name] = proxy.measure_labelled(data, seed)
        cpu[proxy.name] = clock() - before - (data.shared_seconds - kept_cpu)
        wall[proxy.name] = (
            time.perf_counter() - wall_before - (data.shared_wall_seconds - kept_wall)
        )
    return measured, cpu, wall, shared_cpu + data.shared_seconds


def _map_modules(score, items: list, workers: int) -> list:
    """`score(item)` for every item, in order; with `workers` > 1 in that many threads
    with one BLAS thread each (the proxies' time is spent in LAPACK and BLAS calls,
    which release the GIL, so modules scored side by side use the cores that one
    module's small matrices cannot keep busy)."""
    if workers <= 1:
        return [score(item) for item in items]
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        with futures.ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(score, items))


def select_together(proxies: list[FeatureProxy], task, ctx: Context, workers: int = 1):
    """({name: SelectionResult}, {name: CPU seconds}, shared CPU seconds): each proxy's
    `select` of the pool, in one pass over the modules (`workers` of them scored at a
    time, in threads; the scores do not depend on it beyond rounding). A proxy's seconds are its own
    arithmetic, summed over the modules (its wall seconds too, so with several workers
    they add up to more than the time elapsed); what the proxies share (checking and
    copying the features, their covariance, its eigendecomposition, the nearest
    neighbours) is counted once, apart. The features are read in this thread, one
    module after another (a feature store need not be thread-safe)."""
    inputs, forward, num_examples = [], 0.0, 0
    for expert in ctx.pool.experts:
        features, labels, seconds = ctx.store.outputs(expert.handle, task, ctx.split)
        forward += seconds
        num_examples = len(labels)
        inputs.append((expert, features, labels))

    workers = max(1, min(workers, len(inputs)))
    # Side by side, each thread's own CPU seconds; alone, the process's (they include
    # the BLAS library's threads).
    clock = time.thread_time if workers > 1 else time.process_time
    scored = _map_modules(
        lambda item: _score_module(proxies, item, task, ctx.seed, clock), inputs, workers
    )
    measured = {p.name: {} for p in proxies}
    cpu, wall = dict.fromkeys(measured, 0.0), dict.fromkeys(measured, 0.0)
    shared_cpu = 0.0
    for (expert, _, _), (module_measured, module_cpu, module_wall, module_shared) in zip(
        inputs, scored, strict=True
    ):
        for name in measured:
            measured[name][expert.id] = module_measured[name]
            cpu[name] += module_cpu[name]
            wall[name] += module_wall[name]
        shared_cpu += module_shared
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

"""Comparing two methods of a multi-seed bench: one method's relative gain over another
on the same tasks and runs, per seed and averaged over seeds, with hierarchical bootstrap
intervals and paired tests (stats.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vtab_eval.report import stats


def runs_array(seeds: Sequence, tasks: Sequence[str], method: str) -> np.ndarray:
    """[seeds, tasks, runs] of one method, from `seed_headline.SeedRun`s; every (seed,
    task) must have as many runs."""
    rows = [[run.tasks[t]["runs"][method] for t in tasks] for run in seeds]
    counts = {len(r) for row in rows for r in row}
    if len(counts) != 1:
        raise ValueError(
            f"method {method!r} has {sorted(counts)} runs per task across the seeds: "
            "their transfer configs differ (finetune.final_repeats / sweep_repeats)"
        )
    return np.asarray(rows, np.float64)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def compare(method: np.ndarray, reference: np.ndarray, config) -> dict:
    """Gain of ``method`` over ``reference`` ([seeds, tasks, runs] each), with intervals
    (None with one seed) and paired tests."""
    gains = stats.seed_gains(method, reference)
    level, samples = config.confidence, config.bootstrap_samples
    intervals = {}
    for name, resample_tasks in (("interval", False), ("interval_tasks", True)):
        intervals[name] = (
            list(
                stats.hierarchical_interval(
                    method,
                    reference,
                    resample_tasks=resample_tasks,
                    num_samples=samples,
                    level=level,
                    seed=config.seed,
                )
            )  # fmt: skip
            if len(gains) > 1
            else None
        )
    # Per (seed, task): median accuracy difference, in accuracy points.
    differences = np.median(method, axis=2) - np.median(reference, axis=2)
    units_p, units_exact = stats.sign_flip_test(
        differences, num_samples=config.permutation_samples, seed=config.seed
    )
    seeds_p, seeds_exact = stats.sign_flip_test(
        gains, num_samples=config.permutation_samples, seed=config.seed
    )
    return {
        "gain": float(gains.mean()),
        "seed_gains": [float(g) for g in gains],
        "spread": float(gains.max() - gains.min()),
        "sd": _finite(float(gains.std(ddof=1)) if len(gains) > 1 else math.nan),
        **intervals,
        "paired_t_p": _finite(stats.paired_t(gains)),
        "sign_flip_seeds_p": seeds_p,
        "sign_flip_seeds_exact": seeds_exact,
        "sign_flip_units_p": units_p,
        "sign_flip_units_exact": units_exact,
        "tasks": int(method.shape[1]),
    }

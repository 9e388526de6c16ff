"""Statistics of the report: group means of per-task medians with percentile-bootstrap
confidence intervals, and Kendall's rank correlation.

Bootstrap (paper, Tables 1-2: "the median accuracy over 30 runs is used ...
Bootstrapped confidence intervals at 95% level"): the uncertainty is that of the runs.
Each bootstrap sample resamples, independently for every task, its runs with
replacement, takes each task's median, and averages the medians over the group's tasks;
the interval is the (2.5, 97.5) percentiles of those averages. "ALL" averages over all
tasks (not over group means), which is how the paper's ALL column relates to its groups.
A task with a single run contributes no spread: the cpu preset's intervals are then
narrower than a real VTAB run's and say so by collapsing to the point estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.stats

ALL = "all"


def group_mean(runs: Mapping[str, Sequence[float]], tasks: Sequence[str]) -> float:
    return float(np.mean([np.median(runs[t]) for t in tasks]))


def bootstrap_medians(
    runs: Sequence[float], num_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """`[num_samples]` medians of resamples (with replacement) of one task's runs."""
    runs = np.asarray(runs, np.float64)
    if runs.ndim != 1 or len(runs) == 0:
        raise ValueError(f"need a non-empty list of runs, got shape {runs.shape}")
    idx = rng.integers(0, len(runs), size=(num_samples, len(runs)))
    return np.median(runs[idx], axis=1)


def group_intervals(
    runs: Mapping[str, Sequence[float]],
    groups: Mapping[str, str],
    *,
    num_samples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """{group (and "all"): {"mean", "low", "high", "tasks"}} from per-task runs.

    `runs`: task -> test accuracies of its runs; `groups`: task -> group. Tasks are
    resampled in sorted order from one seeded generator, so the result is reproducible.
    """
    if set(runs) != set(groups):
        raise ValueError(f"runs and groups name different tasks: {sorted(set(runs) ^ set(groups))}")
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    samples = {t: bootstrap_medians(runs[t], num_samples, rng) for t in sorted(runs)}
    members: dict[str, list[str]] = {}
    for task in sorted(runs):
        members.setdefault(groups[task], []).append(task)
    members[ALL] = sorted(runs)
    tail = 100 * (1 - level) / 2
    out = {}
    for group, tasks in members.items():
        means = np.mean([samples[t] for t in tasks], axis=0)
        low, high = np.percentile(means, [tail, 100 - tail])
        out[group] = {
            "mean": group_mean(runs, tasks),
            "low": float(low),
            "high": float(high),
            "tasks": len(tasks),
        }
    return out


def _paired(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got {x.shape} and {y.shape}")
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    return x, y


MIN_POINTS_FOR_TAU = 5  # a rank correlation over two or three points is +-1 or nearly so


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (scipy.stats.kendalltau); NaN when fewer than two points or either
    variable is constant."""
    pair = _paired(x, y)
    return float("nan") if pair is None else float(scipy.stats.kendalltau(*pair).statistic)


def weighted_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """scipy.stats.weightedtau (hyperbolic weights): swaps among the top-ranked count
    most, which is what matters to a selector that keeps only its best score."""
    pair = _paired(x, y)
    return float("nan") if pair is None else float(scipy.stats.weightedtau(*pair).statistic)

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


# Several upstream seeds. A bench replicates the whole pipeline per upstream seed
# (upstream, export, transfer): `method` and `reference` below are arrays
# [seeds, tasks, runs] of test accuracies, tasks in one order and runs in the order of
# their run seeds, which are the same for every module, so run i of the method and run
# i of the reference are a pair. A seed's relative gain is that of the paper's ALL
# column: the mean over tasks of per-task medians, method against reference, minus 1.


def seed_gains(method: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`[seeds]` relative gains of the method's mean per-task median over the
    reference's (0.05: 5% better)."""
    method, reference = _checked_pair(method, reference)
    ours = np.median(method, axis=2).mean(axis=1)
    theirs = np.median(reference, axis=2).mean(axis=1)
    return ours / theirs - 1.0


def _checked_pair(method, reference) -> tuple[np.ndarray, np.ndarray]:
    method, reference = np.asarray(method, np.float64), np.asarray(reference, np.float64)
    if method.ndim != 3 or method.shape[:2] != reference.shape[:2] or reference.ndim != 3:
        raise ValueError(
            f"need [seeds, tasks, runs] arrays over the same seeds and tasks, got "
            f"{method.shape} and {reference.shape}"
        )
    if min(method.shape) == 0 or min(reference.shape) == 0:
        raise ValueError(f"no seeds, tasks or runs: {method.shape} and {reference.shape}")
    return method, reference


def hierarchical_interval(
    method,
    reference,
    *,
    resample_tasks: bool = False,
    num_samples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile interval of the mean over seeds of `seed_gains`, by a hierarchical
    bootstrap: each sample draws the seeds with replacement, then within every drawn
    seed and task the runs (a run's method and reference accuracies together when both
    have as many runs, since they share run seeds); with `resample_tasks` it also draws
    the tasks with replacement, once per sample for every seed (the tasks are the same
    in every seed). One seed has no between-seed spread to draw from: refused."""
    method, reference = _checked_pair(method, reference)
    num_seeds, num_tasks = method.shape[:2]
    if num_seeds < 2:
        raise ValueError(
            f"a bootstrap over seeds needs at least 2 seeds, got {num_seeds}: the spread "
            "between upstream trainings cannot be estimated from one"
        )
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    ours, theirs = _resampled_medians(method, reference, num_samples, rng)  # [N, S, T]
    picked = rng.integers(0, num_seeds, size=(num_samples, num_seeds))
    ours = np.take_along_axis(ours, picked[:, :, None], axis=1)
    theirs = np.take_along_axis(theirs, picked[:, :, None], axis=1)
    if resample_tasks:
        tasks = rng.integers(0, num_tasks, size=(num_samples, 1, num_tasks))
        ours = np.take_along_axis(ours, tasks, axis=2)
        theirs = np.take_along_axis(theirs, tasks, axis=2)
    gains = (ours.mean(axis=2) / theirs.mean(axis=2) - 1.0).mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(gains, [tail, 100 - tail])
    return float(low), float(high)


def _resampled_medians(method, reference, num_samples: int, rng) -> tuple[np.ndarray, ...]:
    """`[num_samples, seeds, tasks]` medians of each (seed, task)'s runs resampled with
    replacement; paired indices when method and reference have as many runs."""
    runs_m, runs_r = method.shape[2], reference.shape[2]
    shape = (num_samples, *method.shape[:2])
    index_m = rng.integers(0, runs_m, size=(*shape, runs_m))
    index_r = index_m if runs_r == runs_m else rng.integers(0, runs_r, size=(*shape, runs_r))
    ours = np.median(np.take_along_axis(method[None], index_m, axis=3), axis=3)
    theirs = np.median(np.take_along_axis(reference[None], index_r, axis=3), axis=3)
    return ours, theirs


def paired_t(differences) -> float:
    """Two-sided p of a one-sample t-test that the mean of paired differences is 0
    (scipy.stats.ttest_1samp); NaN with fewer than 2 or constant differences."""
    d = np.asarray(differences, np.float64)
    if d.ndim != 1 or len(d) < 2 or np.all(d == d[0]):
        return float("nan")
    return float(scipy.stats.ttest_1samp(d, 0.0).pvalue)


MAX_EXACT_FLIPS = 16  # 2**16 sign patterns enumerated; more units are sampled


def sign_flip_test(differences, *, num_samples: int = 20000, seed: int = 0) -> tuple[float, bool]:
    """(two-sided p, exact) of the paired sign-flip permutation test that paired
    differences are symmetric about 0, on their mean: every sign pattern when there are
    at most MAX_EXACT_FLIPS units (exact), else `num_samples` random ones, with the
    observed pattern counted in (p = (k + 1) / (n + 1), never 0)."""
    d = np.asarray(differences, np.float64).ravel()
    if len(d) == 0:
        raise ValueError("no paired differences to test")
    observed = abs(d.mean())
    # Means equal to the observed one up to rounding count as at least as extreme.
    slack = 1e-12 * max(1.0, float(np.abs(d).max()))
    if len(d) <= MAX_EXACT_FLIPS:
        patterns = (np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1
        means = np.abs(((1 - 2 * patterns) * d).mean(axis=1))
        return float(np.mean(means >= observed - slack)), True
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(num_samples, len(d)))
    extreme = int(np.sum(np.abs((signs * d).mean(axis=1)) >= observed - slack))
    return (extreme + 1) / (num_samples + 1), False

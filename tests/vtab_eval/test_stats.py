"""Bootstrap intervals against a direct numpy bootstrap, and Kendall's tau."""

import numpy as np
import pytest

from vtab_eval.report import stats

RUNS = {
    "a": [0.70, 0.72, 0.71, 0.69, 0.75],
    "b": [0.90, 0.88, 0.91],
    "c": [0.40, 0.55, 0.45, 0.50],
    "d": [0.60],
}
GROUPS = {"a": "natural", "b": "natural", "c": "structured", "d": "specialized"}


def _direct(runs, tasks, num_samples, rng, level=0.95):
    """The textbook loop: resample each task's runs, median per task, mean over tasks."""
    means = []
    for _ in range(num_samples):
        medians = []
        for t in tasks:
            sample = rng.choice(np.asarray(runs[t]), size=len(runs[t]), replace=True)
            medians.append(np.median(sample))
        means.append(np.mean(medians))
    tail = 100 * (1 - level) / 2
    return np.percentile(means, [tail, 100 - tail])


def test_intervals_match_a_direct_bootstrap():
    ours = stats.group_intervals(RUNS, GROUPS, num_samples=4000, seed=3)
    assert ours["natural"]["mean"] == pytest.approx((0.71 + 0.90) / 2)
    assert ours["all"]["mean"] == pytest.approx((0.71 + 0.90 + 0.475 + 0.60) / 4)
    assert ours["all"]["tasks"] == 4 and ours["natural"]["tasks"] == 2
    rng = np.random.default_rng(12345)  # independent draws: agreement within MC error
    for group, tasks in (("natural", ["a", "b"]), ("all", sorted(RUNS))):
        low, high = _direct(RUNS, tasks, 4000, rng)
        assert ours[group]["low"] == pytest.approx(low, abs=0.006)
        assert ours[group]["high"] == pytest.approx(high, abs=0.006)
        assert ours[group]["low"] <= ours[group]["mean"] <= ours[group]["high"]


def test_a_single_run_per_task_gives_a_point_interval():
    out = stats.group_intervals({"d": [0.6]}, {"d": "specialized"}, num_samples=50)
    assert out["specialized"] == {"mean": 0.6, "low": 0.6, "high": 0.6, "tasks": 1}


def test_intervals_are_reproducible_and_checked():
    assert stats.group_intervals(RUNS, GROUPS, seed=1) == stats.group_intervals(
        RUNS, GROUPS, seed=1
    )
    with pytest.raises(ValueError, match="different tasks"):
        stats.group_intervals(RUNS, {"a": "natural"})
    with pytest.raises(ValueError, match="confidence level"):
        stats.group_intervals(RUNS, GROUPS, level=95)


def test_kendall_tau_by_hand_and_with_ties():
    # One discordant pair of three: (2 - 1) / 3.
    assert stats.kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert stats.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # tau-b with a tie in x: 2 concordant, 0 discordant, 1 tied pair -> 2 / sqrt(2 * 3).
    assert stats.kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / np.sqrt(6))
    assert np.isnan(stats.kendall_tau([1], [1])) and np.isnan(stats.kendall_tau([1, 1], [1, 2]))


def test_weighted_tau_counts_swaps_at_the_top_more():
    x = [5.0, 4.0, 3.0, 2.0, 1.0]
    top_swapped = [4.0, 5.0, 3.0, 2.0, 1.0]
    bottom_swapped = [5.0, 4.0, 3.0, 1.0, 2.0]
    assert stats.weighted_tau(x, x) == pytest.approx(1.0)
    assert stats.weighted_tau(x, top_swapped) < stats.weighted_tau(x, bottom_swapped) < 1.0
    assert stats.kendall_tau(x, top_swapped) == stats.kendall_tau(x, bottom_swapped)
    assert np.isnan(stats.weighted_tau([1, 1], [1, 2]))

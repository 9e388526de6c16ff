"""The statistics over upstream seeds (stats.py) on synthetic results with known answers."""

import numpy as np
import pytest
import scipy.stats

from vtab_eval.report import stats


def _constant_runs(values, runs=3):
    """[seeds, tasks, runs] accuracies, every run of a (seed, task) the same."""
    values = np.asarray(values, np.float64)
    return np.repeat(values[:, :, None], runs, axis=2)


# Dyadic accuracies: the 25% gain below is exact in binary floating point.
REFERENCE = _constant_runs([[0.5, 0.25]] * 4)
BETTER = _constant_runs([[0.625, 0.3125]] * 4)


def test_seed_gains_are_relative_to_the_reference_mean():
    assert stats.seed_gains(BETTER, REFERENCE).tolist() == [0.25] * 4


@pytest.mark.parametrize("resample_tasks", [False, True])
def test_a_constant_gain_gives_an_interval_of_zero_width_around_it(resample_tasks):
    low, high = stats.hierarchical_interval(
        BETTER, REFERENCE, resample_tasks=resample_tasks, num_samples=500
    )
    assert (low, high) == (0.25, 0.25)


def test_one_seed_is_refused():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        stats.hierarchical_interval(BETTER[:1], REFERENCE[:1])


def test_the_interval_spans_the_spread_between_seeds():
    # Two seeds, gains 0 and 20%: a resample's mean is 0, 10% or 20% (chances 1/4, 1/2, 1/4).
    reference = _constant_runs([[0.5], [0.5]])
    method = _constant_runs([[0.5], [0.6]])
    low, high = stats.hierarchical_interval(method, reference, num_samples=4000)
    assert low == 0.0
    assert high == pytest.approx(0.2, abs=1e-12)


def test_runs_are_resampled_in_pairs():
    # The method's runs are the reference's: every paired resample gains exactly 0,
    # though the runs vary (an unpaired resample would not).
    rng = np.random.default_rng(1)
    runs = rng.uniform(0.3, 0.9, size=(3, 4, 5))
    assert stats.hierarchical_interval(runs, runs.copy(), num_samples=300) == (0.0, 0.0)


def test_resampling_tasks_adds_the_spread_between_tasks():
    # Every seed alike, one task gains 50% and the other nothing.
    reference = _constant_runs([[0.5, 0.5]] * 3)
    method = _constant_runs([[0.75, 0.5]] * 3)
    seeds_only = stats.hierarchical_interval(method, reference, num_samples=2000)
    with_tasks = stats.hierarchical_interval(
        method, reference, resample_tasks=True, num_samples=2000
    )
    assert seeds_only == pytest.approx((0.25, 0.25), abs=1e-12)
    assert with_tasks[0] == 0.0 and with_tasks[1] == 0.5


def test_noisy_runs_give_an_interval_around_the_mean_gain():
    rng = np.random.default_rng(2)
    reference = rng.uniform(0.4, 0.6, size=(5, 6, 3))
    method = reference * 1.1 + rng.normal(0, 0.01, size=reference.shape)
    low, high = stats.hierarchical_interval(method, reference, num_samples=1000)
    assert low < stats.seed_gains(method, reference).mean() < high
    assert low < 0.1 < high


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="same seeds and tasks"):
        stats.seed_gains(BETTER, REFERENCE[:, :1])


def test_sign_flip_is_exact_over_few_units():
    # Five positive differences: of 32 sign patterns only all-plus and all-minus are as extreme.
    assert stats.sign_flip_test([0.1, 0.2, 0.3, 0.4, 0.5]) == (2 / 32, True)
    assert stats.sign_flip_test([0.0, 0.0, 0.0]) == (1.0, True)
    p, exact = stats.sign_flip_test([0.1, -0.1, 0.2, -0.2])
    assert exact and p == 1.0


def test_sign_flip_samples_patterns_over_many_units():
    p, exact = stats.sign_flip_test(np.full(40, 0.05), num_samples=999)
    assert not exact
    assert p == pytest.approx(1 / 1000)  # no random pattern is as extreme: (0 + 1) / (999 + 1)


def test_paired_t_is_scipys_one_sample_test():
    d = [0.01, 0.03, -0.005, 0.02, 0.015]
    assert stats.paired_t(d) == pytest.approx(scipy.stats.ttest_1samp(d, 0.0).pvalue, rel=1e-12)
    t = np.mean(d) / (np.std(d, ddof=1) / np.sqrt(5))
    assert stats.paired_t(d) == pytest.approx(2 * scipy.stats.t.sf(t, df=4), rel=1e-9)
    assert np.isnan(stats.paired_t([0.02] * 5))
    assert np.isnan(stats.paired_t([0.02]))

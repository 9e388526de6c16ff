"""What every feature-based proxy must do, found through the registry (a new proxy is
covered by adding its file): score a pool through the selector interface, stay finite
or fail in one clear line on degenerate features, and never change its input arrays."""

import types

import numpy as np
import pytest

from tests.vtab_eval.proxies.conftest import clustered
from vtab_eval import selection
from vtab_eval.pool.expert_pool import Module, Pool
from vtab_eval.selection.feature_proxy import FeatureProxy, select_together

PROXIES = sorted(name for name, cls in selection.SELECTORS.items() if issubclass(cls, FeatureProxy))


class FakeStore:
    """A feature cache in memory: one matrix per module handle."""

    compute_seconds = load_seconds = 0.0

    def __init__(self, outputs):
        self._outputs = outputs

    def outputs(self, handle, task, split):
        features, labels = self._outputs[handle]
        return features, labels, 0.5


def _context(outputs):
    experts = tuple(Module(h, h, {"kind": "baseline" if h == "b" else "full"}) for h in outputs)
    return selection.Context(Pool(experts), FakeStore(outputs))


TASK = types.SimpleNamespace(name="toy", spec="toy")


def test_the_proxies_are_registered():
    assert {"logme", "hscore", "hscore_shrunk", "gbc", "nleep", "sfda", "ncti", "transrate",
            "linear_probe", "knn_k5", "knn_cosine"} <= set(PROXIES)  # fmt: skip


@pytest.mark.parametrize("name", PROXIES)
def test_a_pool_is_scored_and_the_separable_module_wins(name):
    good, labels = clustered(n=60, d=8, spread=0.1)
    noise = np.random.default_rng(1).normal(size=good.shape).astype(np.float32)
    ctx = _context({"b": (noise, labels), "e1": (noise * 2, labels), "e2": (good, labels)})
    result = selection.get_selector(name).select(TASK, ctx)
    assert set(result.scores) == {"b", "e1", "e2"}
    assert all(np.isfinite(v) for v in result.scores.values())
    assert result.pick == "e2"
    assert result.cost_seconds >= 1.5  # three cached forward passes of 0.5 s


def _degenerate_cases():
    x, labels = clustered(n=30, d=6)
    constant = x.copy()
    constant[:, 2] = 3.0
    single = labels.copy()
    single[0] = 9  # a class of one image
    wide, wide_labels = clustered(n=15, d=40)  # n < d
    return {
        "constant feature": (constant, labels),
        "class of one image": (x, single),
        "n < d": (wide, wide_labels),
    }


@pytest.mark.parametrize("case", list(_degenerate_cases()))
@pytest.mark.parametrize("name", PROXIES)
def test_degenerate_features_give_a_finite_score_and_are_left_unchanged(name, case):
    features, labels = _degenerate_cases()[case]
    features.setflags(write=False)  # any write in place raises
    labels.setflags(write=False)
    before = features.copy(), labels.copy()
    proxy = selection.get_selector(name)
    value = proxy.combine({"m": proxy.measure(features, labels, 0)})[0]["m"]
    assert np.isfinite(value)
    np.testing.assert_array_equal(features, before[0])
    np.testing.assert_array_equal(labels, before[1])


@pytest.mark.parametrize("name", PROXIES)
def test_one_class_or_non_finite_features_fail_in_one_line_naming_the_module(name):
    x, labels = clustered(n=20, d=4)
    bad = x.copy()
    bad[3, 1] = np.nan
    for features, lab, match in (
        (x, np.zeros(20, int), "at least 2"),
        (bad, labels, "row 3, column 1"),
    ):
        with pytest.raises(ValueError, match=match) as error:
            selection.get_selector(name).select(TASK, _context({"b": (features, lab)}))
        assert "b's features of toy" in str(error.value) and "\n" not in str(error.value)


def test_scoring_together_gives_each_proxys_own_selection():
    # One pass over the modules with the features' covariance and spectrum shared
    # computes what each proxy computes alone.
    good, labels = clustered(n=60, d=8, spread=0.1)
    noise = np.random.default_rng(1).normal(size=good.shape).astype(np.float32)
    ctx = _context({"b": (noise, labels), "e1": (noise * 2, labels), "e2": (good, labels)})
    proxies = [selection.get_selector(name) for name in PROXIES]
    together, cpu, shared = select_together(proxies, TASK, ctx)
    assert list(together) == PROXIES and set(cpu) == set(PROXIES) and shared > 0
    for proxy in proxies:
        alone = proxy.select(TASK, ctx)
        assert together[proxy.name].scores == pytest.approx(alone.scores, rel=1e-12, abs=1e-15)
        assert together[proxy.name].pick == alone.pick
        assert together[proxy.name].details == alone.details
        assert together[proxy.name].cost_seconds >= 1.5  # the forward passes are counted


def test_scoring_modules_side_by_side_gives_the_same_selection():
    # Threads change only which module is scored when; each module's arithmetic is the
    # same, up to the summation order of a BLAS call (one thread here, the library's
    # count otherwise), hence a tolerance of a few thousand float64 roundings.
    good, labels = clustered(n=60, d=8, spread=0.1)
    rng = np.random.default_rng(2)
    modules = {f"m{i}": (good + rng.normal(scale=i, size=good.shape), labels) for i in range(5)}
    ctx = _context(modules)
    proxies = [selection.get_selector(name) for name in PROXIES]
    alone, _, _ = select_together(proxies, TASK, ctx, workers=1)
    side_by_side, cpu, shared = select_together(proxies, TASK, ctx, workers=2)
    assert shared > 0 and all(seconds >= 0 for seconds in cpu.values())
    for name in PROXIES:
        assert side_by_side[name].scores == pytest.approx(alone[name].scores, rel=1e-9, abs=1e-12)
        assert side_by_side[name].pick == alone[name].pick
        assert side_by_side[name].details == alone[name].details


def test_scoring_side_by_side_names_a_bad_module_in_one_line():
    x, labels = clustered(n=20, d=4)
    modules = {"b": (x, labels), "e1": (x, np.zeros(20, int))}
    proxies = [selection.get_selector(name) for name in PROXIES]
    with pytest.raises(ValueError, match="the proxies on e1's features of toy: .*at least 2"):
        select_together(proxies, TASK, _context(modules), workers=2)


def test_scoring_together_names_a_bad_module_in_one_line():
    x, labels = clustered(n=20, d=4)
    proxies = [selection.get_selector(name) for name in PROXIES]
    with pytest.raises(ValueError, match="the proxies on b's features of toy: .*at least 2"):
        select_together(proxies, TASK, _context({"b": (x, np.zeros(20, int))}))

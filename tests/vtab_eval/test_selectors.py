"""Domain prediction, label matching, random and the references on a known pool."""

import math

import numpy as np
import pytest

from vtab_eval import features
from vtab_eval.pool import expert_pool as pool
from vtab_eval.selection import (
    BaselineSelector,
    Context,
    DomainPredictionSelector,
    LabelMatchingSelector,
    OracleSelector,
    RandomSelector,
    SelectionResult,
    best,
    get_selector,
    label_matching,
)

RED, GREEN, BASE = (f"bit/tiny/tiny_upstream/{n}" for n in ("red", "green", "baseline"))


@pytest.fixture(scope="module")
def ctx(hub_root, tmp_path_factory):
    store = features.FeatureStore(tmp_path_factory.mktemp("features"), image_size=8)
    return Context(pool.open_pool(str(hub_root)), store)


@pytest.mark.parametrize("selector", [DomainPredictionSelector(), LabelMatchingSelector()])
def test_image_based_proxies_follow_the_dominant_hue(ctx, red_task, green_task, selector):
    assert selector.select(red_task, ctx).pick == RED
    assert selector.select(green_task, ctx).pick == GREEN  # not just the first or last


def test_domain_prediction_is_the_mean_log_sigmoid(ctx, red_task):
    result = DomainPredictionSelector().select(red_task, ctx)
    logits, _, _ = ctx.store.outputs(ctx.pool.epn.handle, red_task, ctx.split)
    expected = np.mean(-np.log1p(np.exp(-logits[:, 0].astype(np.float64))))
    assert result.scores[RED] == pytest.approx(expected, rel=1e-9)
    assert result.scores[BASE] == -math.inf  # the EPN does not know the baseline
    assert SelectionResult.from_json(result.to_json()).scores[BASE] == -math.inf


def test_label_matching_scores_are_minus_kl_to_the_smoothed_prior(ctx, red_task):
    result = LabelMatchingSelector(smoothing=0.01).select(red_task, ctx)
    logits, _, _ = ctx.store.outputs(ctx.pool.upstream_classifier.handle, red_task, ctx.split)
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))  # labels l_red, l_green, l_blue
    q = (probs / probs.sum(axis=1, keepdims=True)).mean(axis=0)
    prior = 0.99 * np.array([0.9, 0.05, 0.05]) + 0.01 / 3
    assert result.details["kl"][RED] == pytest.approx(np.sum(q * np.log(q / prior)))
    assert result.scores[RED] == -result.details["kl"][RED]


def test_kl_divergence():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5])
    assert label_matching.kl_divergence(p, q) == pytest.approx(np.log(2))
    assert label_matching.kl_divergence(q, q) == 0.0


def test_random_is_seeded_per_task_and_never_draws_the_baseline(ctx, red_task, green_task):
    picks = set()
    for seed in range(12):
        ctx_seed = Context(ctx.pool, ctx.store, seed=seed)
        first = RandomSelector().select(red_task, ctx_seed)
        assert RandomSelector().select(red_task, ctx_seed).pick == first.pick
        picks.add(first.pick)
    assert BASE not in picks and len(picks) == 3


def test_baseline_reference_and_oracle(ctx, red_task):
    assert BaselineSelector().select(red_task, ctx).pick == BASE
    accuracy = {RED: 0.5, GREEN: 0.9, "bit/tiny/tiny_upstream/blue": 0.7}
    called = []

    def finetune(expert):
        called.append(expert.id)
        return accuracy[expert.id]

    oracle = OracleSelector().select(red_task, Context(ctx.pool, ctx.store, finetune=finetune))
    assert oracle.pick == GREEN and sorted(called) == sorted(accuracy)
    with pytest.raises(ValueError, match="Context.finetune"):
        OracleSelector().select(red_task, ctx)


def test_missing_modules_and_names_are_clear_errors(ctx, red_task, tmp_path):
    bare = pool.Pool(ctx.pool.experts)
    with pytest.raises(pool.PoolError, match="needs an EPN"):
        DomainPredictionSelector().select(red_task, Context(bare, ctx.store))
    with pytest.raises(pool.PoolError, match="upstream classifier"):
        LabelMatchingSelector().select(red_task, Context(bare, ctx.store))
    with pytest.raises(ValueError, match="unknown selector 'nope'"):
        get_selector("nope")


def test_best_breaks_ties_by_candidate_order():
    assert best({"a": 1.0, "b": 2.0, "c": 2.0}, ["a", "c", "b"]) == "c"
    assert best({"a": -math.inf, "b": 0.0}, ["a", "b"]) == "b"
    with pytest.raises(ValueError, match="no candidate"):
        best({"a": -math.inf}, ["a"])


def test_knn_within_one_kind_of_expert(ctx, red_task):
    full = get_selector("knn_full").select(red_task, ctx)
    everything = get_selector("knn").select(red_task, ctx)
    assert full.selector == "knn_full"
    assert full.pick == everything.pick and full.scores == everything.scores  # all are full
    kinds = {e.id: e.kind for e in ctx.pool.experts}
    assert kinds[full.pick] == "full"
    with pytest.raises(ValueError, match=r"knn_adapter: the pool has no 'adapter' experts"):
        get_selector("knn_adapter").select(red_task, ctx)


def test_the_baseline_is_a_candidate_by_default_but_not_for_knn_experts(ctx):
    from vtab_eval.configs import transfer
    from vtab_eval.selection import SELECTORS

    selection = transfer.get_config("cpu").selection
    assert selection.include_baseline
    for name in ("knn", "knn_full", "label", "random"):
        assert BASE in SELECTORS[name].from_config(selection).candidates(ctx.pool), name
    experts_only = SELECTORS["knn_experts"].from_config(selection)
    assert BASE not in experts_only.candidates(ctx.pool) and RED in experts_only.candidates(
        ctx.pool
    )
    # Every selector names its table row and what it reads.
    assert all(cls.display_name for cls in SELECTORS.values())
    assert {SELECTORS[n].needs for n in ("knn", "knn_experts", "domain", "label", "random")} == {
        "features",
        "epn",
        "classifier",
        "",
    }

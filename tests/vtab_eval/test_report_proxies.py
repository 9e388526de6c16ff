"""The proxies' judgement against fine-tuning on synthetic inputs with known answers."""

import math

import pytest

from vtab_eval.report import proxies

ACC = {"b": 0.60, "f1": 0.80, "f2": 0.70, "a1": 0.90}
KINDS = {"b": "baseline", "f1": "full", "f2": "full", "a1": "adapter"}


def test_a_proxy_ordering_like_fine_tuning_has_tau_one_and_no_regret():
    metrics = proxies.judge_task({m: 10 * a for m, a in ACC.items()}, ACC, list(ACC))
    assert metrics["weighted_tau"] == pytest.approx(1.0)
    assert metrics["kendall_tau"] == pytest.approx(1.0)
    assert metrics["pick"] == "a1" and metrics["relative_accuracy"] == 1.0
    assert metrics["regret"] == 0.0


def test_a_reversed_proxy_picks_the_worst():
    metrics = proxies.judge_task({m: -a for m, a in ACC.items()}, ACC, list(ACC))
    assert metrics["weighted_tau"] == pytest.approx(-1.0)
    assert metrics["kendall_tau"] == pytest.approx(-1.0)
    assert metrics["pick"] == "b"
    assert metrics["relative_accuracy"] == pytest.approx(0.60 / 0.90)
    assert metrics["regret"] == pytest.approx(0.30)


def test_unscored_modules_are_left_out_and_ties_go_to_the_first():
    scores = {"b": 1.0, "f1": 1.0, "f2": float("-inf")}
    metrics = proxies.judge_task(scores, ACC, list(ACC))
    assert metrics["modules"] == 2 and metrics["pick"] == "b"
    assert math.isnan(metrics["weighted_tau"])  # constant scores: no tau


def test_summaries_per_subset_group_and_relation():
    scores = {
        "t1": {"good": {m: a for m, a in ACC.items()}, "bad": {m: -a for m, a in ACC.items()}},
        "t2": {"good": {m: a for m, a in ACC.items()}, "bad": {m: a for m, a in ACC.items()}},
    }
    accuracies = {"t1": ACC, "t2": ACC}
    seconds = {"t1": {"good": 4.0, "bad": 8.0}, "t2": {"good": 4.0, "bad": 8.0}}
    tasks = {"t1": {"group": "natural", "relation": "matched"}, "t2": {"group": "structured"}}
    subsets = {proxies.ALL: lambda m: True, "B+full": lambda m: KINDS[m] in ("baseline", "full")}
    rows = proxies.summarise(proxies.per_task(scores, accuracies, seconds, subsets), tasks)
    row = {(r["subset"], r["proxy"], r["slice"]): r for r in rows}
    assert row["all", "bad", "all"]["median_weighted_tau"] == pytest.approx(0.0)  # -1 and 1
    assert row["all", "bad", "relation=matched"]["mean_kendall_tau"] == pytest.approx(-1.0)
    assert row["all", "bad", "group=structured"]["mean_regret"] == 0.0
    assert ("all", "bad", "relation=None") not in row  # t2 declares no relation
    # Within B + full experts the best is f1 (0.80): the reversed proxy picks b.
    assert row["B+full", "bad", "relation=matched"]["mean_relative_accuracy"] == pytest.approx(0.75)
    assert row["all", "good", "all"]["median_seconds_per_module"] == 1.0
    assert "| good | 2 | 1.000 |" in proxies.markdown(rows)


def test_the_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{"subset": "all", "slice": "all", "proxy": "p", "median_weighted_tau": 0.3,
             "median_seconds_per_module": 0.01}]  # fmt: skip
    assert proxies.tau_against_cost(rows, tmp_path / "tau.png").stat().st_size > 0

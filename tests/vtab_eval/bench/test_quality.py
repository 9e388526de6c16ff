"""The bench README's rank-agreement and probe parts on canned numbers."""

import json

import pytest

from vtab_eval.bench import quality


def _results(scores):
    return {"tasks": [{"task": "t", "short": "t", "knn_scores": scores}]}


def test_tau_over_the_oracles_experts_only():
    scores = {f"e{i}": 0.1 * i for i in range(6)} | {"unscreened": 0.9}
    oracle = {"t": {f"e{i}": {"median_test_accuracy": a} for i, a in enumerate([1, 2, 3, 4, 6, 5])}}
    (row,) = quality.tau_rows(_results(scores), oracle)
    assert row["experts"] == 6
    assert row["tau"] == pytest.approx((14 - 1) / 15)  # one discordant pair of 15
    assert row["weighted_tau"] < 1
    lines = "\n".join(quality.tau_lines(_results(scores), oracle))
    assert "Median Kendall tau +0.87 over 1 tasks" in lines and "met" in lines


def test_tau_needs_five_experts():
    scores = {f"e{i}": 0.1 * i for i in range(4)}
    oracle = {"t": {e: {"median_test_accuracy": s} for e, s in scores.items()}}
    assert quality.tau_rows(_results(scores), oracle) == []
    assert quality.tau_lines(_results(scores), oracle)[0].startswith("Missing")


def test_probe_lines(tmp_path):
    assert quality.probe_lines(tmp_path)[0].startswith("Missing")
    record = {
        "summary_line": "Specialisation probes: full experts beat B ...",
        "probes": [{"node": "a", "saturated": True}, {"node": "b", "saturated": False}],
        "matrix": {"m1": {}, "m2": {}},
    }
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "probes.json").write_text(json.dumps(record))
    text = "\n".join(quality.probe_lines(tmp_path))
    assert record["summary_line"] in text and "2 probes, 2 modules" in text
    assert "on 1: a." in text


def _proxy_run(workdir, logme_scores):
    """A run directory with one task's LogME selection (a registered proxy)."""
    from vtab_eval import files

    record = {"task": "t", "selector": "logme", "scores": logme_scores, "pick": "b",
              "seconds": 2.0, "cost_seconds": 2.0, "details": {}}  # fmt: skip
    files.write_json(workdir / "tasks" / "t" / "selection" / "logme.json", record)


def test_every_proxy_is_judged_against_the_screening_runs(tmp_path):
    # Accuracies rise with the module's number; LogME orders them the same way except
    # that it puts the adapter first: its pick is worth 0.4 of the best (1.0).
    accuracies = {"b": 0.6, "f1": 0.8, "f2": 1.0, "a1": 0.4}
    kinds = {"b": "baseline", "f1": "full", "f2": "full", "a1": "adapter"}
    screened = {
        "t": {m: {"median_test_accuracy": a, "kind": kinds[m]} for m, a in accuracies.items()}
    }
    _proxy_run(tmp_path, {"b": 1.0, "f1": 2.0, "f2": 3.0, "a1": 4.0})
    results = {"tasks": [{"task": "t", "group": "natural", "relation": "matched"}]}
    rows, subsets = quality.proxy_judgement(tmp_path, results, screened)
    by = {(r["subset"], r["slice"]): r for r in rows if r["proxy"] == "logme"}
    assert subsets == ["all", "B + full"]
    assert by[("all", "all")]["mean_relative_accuracy"] == pytest.approx(0.4)
    assert by[("all", "all")]["mean_regret"] == pytest.approx(0.6)
    # Over B and the full experts the order is exact: tau 1, the best pick.
    assert by[("B + full", "all")]["mean_kendall_tau"] == pytest.approx(1.0)
    assert by[("B + full", "relation=matched")]["mean_relative_accuracy"] == pytest.approx(1.0)
    text = "\n".join(quality.proxy_lines(tmp_path, results, screened))
    assert "**B + full, relation=matched tasks**" in text and "| logme | 1 |" in text


def test_proxies_without_screening_runs_are_missing(tmp_path):
    _proxy_run(tmp_path, {"b": 1.0})
    results = {"tasks": [{"task": "t", "group": "natural"}]}
    assert quality.proxy_judgement(tmp_path, results, {}) is None
    assert quality.proxy_lines(tmp_path, results, {})[0].startswith("Missing")

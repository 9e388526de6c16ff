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

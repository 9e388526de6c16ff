"""Proxies judged over a multi-seed bench (report/seed_proxies.py) on seeds whose
screening accuracies and proxy scores make every figure known by hand."""

import json

import pytest

from vtab_eval.bench import seeds as seeds_binary
from vtab_eval.configs import bench_seeds
from vtab_eval.report import seed_headline, seed_proxies

# Screening accuracy and kind of each module; every proxy scores all four.
SCREENED = {
    "b": (0.50, "baseline"),
    "e1": (0.60, "full"),
    "e2": (0.70, "full"),
    "a1": (0.55, "adapter"),
}
TASKS = (("mini_a", "natural", "matched"), ("mini_b", "structured", "unrelated"))


def entry(task, group, relation):
    accuracy = {m: a for m, (a, _) in SCREENED.items()}
    return {
        "task": task,
        "group": group,
        "relation": relation,
        "methods": {
            "baseline": {"test_accuracies": [0.5] * 3, "pick": "b"},
            "knn": {"test_accuracies": [0.7] * 3, "pick": "e2", "selection_seconds": 8.0},
            "reversed": {"test_accuracies": [0.5] * 3, "pick": "b", "selection_seconds": 4.0},
        },
        "knn_scores": dict(accuracy),  # the same order as the accuracies: tau 1
        "reversed_scores": {m: -a for m, a in accuracy.items()},  # tau -1
        "constant_scores": dict.fromkeys(accuracy, 1.0),  # no tau; no seconds recorded
        # The accuracies' order but the adapter first: a tau of 1 over B + full only.
        "adapter_first_scores": {**accuracy, "a1": 1.0},
        "screened": {m: {"accuracy": a, "kind": k} for m, (a, k) in SCREENED.items()},
    }


def write_seed(root, seed, screened=True, tasks=TASKS):
    tasks = [entry(*t) for t in tasks]
    if not screened:
        for t in tasks:
            t["screened"] = {}
    report = root / f"seed-{seed}" / "transfer" / "report"
    report.mkdir(parents=True)
    (report / "results.json").write_text(json.dumps({"tasks": tasks}))
    (root / f"seed-{seed}" / "seed.json").write_text(json.dumps({"seed": seed, "seconds": 1}))


def config(root):
    c = bench_seeds.get_config("smoke")
    c.workdir = str(root)
    return c


def rows(record, subset, slice_name):
    return {
        r["proxy"]: r for r in record["rows"] if r["subset"] == subset and r["slice"] == slice_name
    }


def test_each_proxy_is_judged_over_the_screened_seeds_and_tasks(tmp_path):
    write_seed(tmp_path, 0)
    write_seed(tmp_path, 1)
    write_seed(tmp_path, 2, screened=False)  # no oracle on this seed: not judged
    record = seed_headline.headline(seed_headline.load_seeds(tmp_path), config(tmp_path))
    judged = record["proxies"]
    assert judged["seeds"] == [0, 1] and judged["tasks"] == 4
    every = rows(judged, "whole pool", "all")
    knn, reverse = every["knn"], every["reversed"]
    assert knn["tasks"] == 4 and knn["median_weighted_tau"] == pytest.approx(1.0)
    assert reverse["median_weighted_tau"] == pytest.approx(-1.0)
    assert knn["mean_relative_accuracy"] == 1.0 and knn["mean_regret"] == 0.0
    # The reversed proxy picks the worst module, B: 0.5 of the best 0.7.
    assert reverse["mean_relative_accuracy"] == pytest.approx(0.5 / 0.7)
    assert reverse["mean_regret"] == pytest.approx(0.2)
    assert reverse["median_seconds_per_module"] == pytest.approx(1.0)  # 4 s over 4 modules
    # -2 on each task, its two seeds averaged: 2 of the 4 sign patterns as extreme.
    assert reverse["tau_vs_knn"] == pytest.approx(-2.0) and reverse["tasks_paired"] == 2
    assert reverse["tau_vs_knn_p"] == pytest.approx(2 / 4)
    assert knn["tau_vs_knn"] == 0.0 and knn["tau_vs_knn_p"] == 1.0
    # B plus the full experts leaves the adapter out: three modules per task.
    assert every["adapter_first"]["median_weighted_tau"] < 0.9
    assert every["adapter_first"]["mean_relative_accuracy"] == pytest.approx(0.55 / 0.7)
    b_and_full = rows(judged, "B + full", "all")
    assert b_and_full["adapter_first"]["median_weighted_tau"] == pytest.approx(1.0)
    assert b_and_full["adapter_first"]["mean_relative_accuracy"] == 1.0
    near = rows(judged, "whole pool", "relation=matched+weak")
    assert near["knn"]["tasks"] == 2  # mini_a on both seeds
    assert rows(judged, "whole pool", "group=structured")["reversed"]["tasks"] == 2


def test_the_headline_prints_the_proxies_and_the_tau_target(tmp_path):
    write_seed(tmp_path, 0)
    seeds_binary.execute(config(tmp_path))
    text = (tmp_path / "headline.md").read_text()
    assert "## Proxies against fine-tuning (seeds 0; 2 (seed, task)s)" in text
    assert "| reversed | 2 | 2 | -1.000 |" in text and "| -2.000 | 0.500 |" in text
    assert (
        "the best median weighted tau of 3 proxies is knn's 1.00; kNN 1.00 (target >= 0.5: met"
        in text
    )
    assert (tmp_path / "proxies_tau_cost.png").exists()
    # Undefined figures are n/a in the table and null in the JSON.
    # Ties go to the first module in order: B, 0.5 of the best 0.7.
    assert "| constant | 2 | 0 | n/a | n/a | 0.714 | 0.2000 | n/a | n/a | n/a |" in text
    judged = json.loads((tmp_path / "headline.json").read_text())["proxies"]
    constant = next(r for r in judged["rows"] if r["proxy"] == "constant")
    assert constant["median_weighted_tau"] is None and constant["tau_vs_knn"] is None


def test_without_screening_there_is_no_proxies_section(tmp_path):
    write_seed(tmp_path, 0, screened=False)
    record = seed_headline.headline(seed_headline.load_seeds(tmp_path), config(tmp_path))
    assert record["proxies"] is None
    assert "Proxies against fine-tuning" not in seed_headline.markdown(record)
    assert seed_proxies.lines(None) == []


def test_the_verdict_counts_tasks_not_seeds_and_corrects_for_several_proxies(tmp_path):
    write_seed(tmp_path, 0)
    write_seed(tmp_path, 1)
    write_seed(tmp_path, 2)
    seeds_binary.execute(config(tmp_path))
    # One task on three seeds is one unit: two tasks, p = 0.5, no verdict.
    assert "- whole pool, every task: better than kNN beyond noise (Holm p < 0.05): none; " in (
        (tmp_path / "headline.md").read_text()
    )
    seven = [(f"mini_{i}", "natural", "matched") for i in range(7)]
    write_seed(tmp_path / "wide", 0, tasks=seven)
    seeds_binary.execute(config(tmp_path / "wide"))
    # Seven tasks: 2 of 128 patterns, p = 1/64, times 2 for two proxies with a p.
    text = (tmp_path / "wide" / "headline.md").read_text()
    assert "worse: reversed (-2.00, Holm p 0.031), adapter_first" in text

"""The report on canned results: shape of the tables and their intervals."""

import csv
from pathlib import Path

import numpy as np
import pytest

from vtab_eval import files
from vtab_eval.configs import transfer
from vtab_eval.report import seed_headline, stats, tau
from vtab_eval.report import tables as report

CANNED = {
    'task_n1(x="a")': ("natural", {"knn": [0.8, 0.82, 0.81], "baseline": [0.7, 0.71, 0.69]}),
    "task_n2": ("natural", {"knn": [0.6, 0.65, 0.62], "baseline": [0.6, 0.61, 0.59]}),
    "task_s1": ("specialized", {"knn": [0.9, 0.91, 0.92], "baseline": [0.93, 0.9, 0.91]}),
    "task_t1": ("structured", {"knn": [0.3, 0.5, 0.4], "baseline": [0.35, 0.45, 0.4]}),
}


@pytest.fixture
def workdir(tmp_path):
    for task, (group, methods) in CANNED.items():
        d = tmp_path / "tasks" / files.slug(task)
        picks = {"knn": "bit/e1", "baseline": "bit/baseline"}
        result = {
            "task": task,
            "group": group,
            "num_classes": 3,
            "methods": {
                m: {
                    "pick": picks[m],
                    "selection_seconds": 2.0 if m == "knn" else 0.0,
                    "finetune_seconds": 30.0,
                    "test_accuracies": runs,
                    "median_test_accuracy": float(np.median(runs)),
                }
                for m, runs in methods.items()
            },
            "seconds": 60.0,
        }
        files.write_json(d / "result.json", result)
        scores = {"bit/e1": 0.9, "bit/e2": 0.5, "bit/baseline": 0.7}
        knn = {"selector": "knn", "task": task, "pick": "bit/e1", "details": {}}
        knn.update(scores=scores, seconds=1.0, cost_seconds=2.0)
        files.write_json(d / "selection" / "knn.json", knn)
        for expert, runs in (("bit/e1", methods["knn"]), ("bit/baseline", methods["baseline"])):
            record = {"task": task, "expert": expert, "test_accuracies": runs, "seconds": 30.0}
            record["median_test_accuracy"] = float(np.median(runs))
            files.write_json(d / "finetune" / f"{files.slug(expert)}.json", record)
    return tmp_path


def test_group_table_matches_direct_bootstrap_and_paper_shape(workdir):
    config = transfer.get_config("cpu")
    config.report.bootstrap_samples = 500
    paths = report.write_report(workdir, config)
    with open(workdir / "report" / "table.csv") as f:
        rows = {(r["method"], r["group"]): r for r in csv.DictReader(f)}
    runs = {t: m["knn"] for t, (_, m) in CANNED.items()}
    groups = {t: g for t, (g, _) in CANNED.items()}
    expected = stats.group_intervals(runs, groups, num_samples=500, seed=config.seed)
    for group in ("natural", "specialized", "structured", "all"):
        row = rows[("knn", group)]
        for key in ("mean", "low", "high"):
            assert float(row[key]) == pytest.approx(100 * expected[group][key], abs=0.005)
    assert float(rows[("knn", "all")]["mean"]) == pytest.approx(
        100 * np.mean([0.81, 0.62, 0.91, 0.4])
    )
    table = (workdir / "report" / "table.md").read_text().splitlines()
    assert table[0] == "| Method | NATURAL | SPECIALIZED | STRUCTURED | ALL |"
    assert table[2].startswith("| Baseline (No Experts) |") and table[3].startswith(
        "| Performance Proxy (kNN) |"
    )
    assert "71.5 [" in (workdir / "report" / "table.md").read_text()  # kNN natural: (81+62)/2
    per_task = (workdir / "report" / "per_task.csv").read_text()
    assert "task_n1/a,natural,bit/baseline,70.0,bit/e1,81.0" in per_task
    timing = (workdir / "report" / "timing.csv").read_text()
    assert "task_n2,knn,3,2.00,30.00,15.0" in timing
    summary = (workdir / "report" / "summary.md").read_text()
    assert "fine-tuning / selection = 15.0x" in summary
    # Two fine-tuned experts per task: no tau table, rather than rows of n/a.
    assert "## Proxy against fine-tuning" in summary and "median tau" not in summary
    assert paths["knn_heatmap"].endswith("knn_heatmap.png")  # matplotlib is a dependency
    assert (workdir / "report" / "knn_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert (workdir / "report" / "proxy_vs_finetune.png").stat().st_size > 1000


def test_kendall_tau_per_task_uses_the_fine_tuned_experts(workdir):
    results = report.load_results(workdir)
    correlations = report.proxy_correlations(
        report.proxy_scores(results, "knn"), report.finetuned(results)
    )
    # Two fine-tuned experts per task: tau over two points is +-1, so it is not shown.
    assert all(len(c["points"]) == 2 for c in correlations.values())
    assert all(np.isnan(c["tau"]) for c in correlations.values())
    # Five or more: kNN ranks four of five as fine-tuning does, one pair swapped.
    knn = {"t": {f"e{i}": s for i, s in enumerate([0.1, 0.2, 0.3, 0.4, 0.5])}}
    tuned = {"t": {f"e{i}": a for i, a in enumerate([0.5, 0.6, 0.8, 0.7, 0.9])}}
    assert report.proxy_correlations(knn, tuned)["t"]["tau"] == pytest.approx(0.8)
    assert np.isnan(report.proxy_correlations(knn, {"t": {"e0": 0.5, "e1": 0.6}})["t"]["tau"])


def _correlation(points_by_task):
    return {t: {"points": points} for t, points in points_by_task.items()}


def test_median_tau_per_relation_over_b_and_full_experts_and_the_whole_pool():
    kinds = {"b": "baseline", "f1": "full", "f2": "full", "f3": "full", "f4": "full"}
    kinds["a1"] = "adapter"
    order = ["b", "f1", "f2", "f3", "f4", "a1"]
    agree = [(e, i, i / 10) for i, e in enumerate(order)]  # same ranks everywhere
    # Full experts reversed, the adapter on top of both rankings.
    mixed = [(e, i, (5 - i if e != "a1" else 9) / 10) for i, e in enumerate(order)]
    correlation = _correlation({"t1": agree, "t2": mixed, "t3": agree, "t4": agree[:4]})
    relations = {"t1": "matched", "t2": "matched", "t3": None, "t4": "weak"}
    rows = tau.tau_summary(correlation, relations, kinds)
    by_key = {(r[0], r[1]): r[2:] for r in rows}
    # t4 has four experts: too few for a tau, so "weak" has no row.
    assert sorted(by_key) == sorted(
        (rel, subset) for rel in ("matched", "undeclared", "all") for subset in tau.TAU_SUBSETS
    )
    assert [r[0] for r in rows][-1] == "all"
    pool, five = [p[1] for p in mixed], [p[1] for p in mixed[:5]]
    want_pool = (stats.kendall_tau(pool, [p[2] for p in mixed]) + 1) / 2  # median of two
    assert by_key[("matched", "whole pool")][:2] == [2, pytest.approx(want_pool)]
    assert stats.kendall_tau(five, [p[2] for p in mixed[:5]]) == pytest.approx(-1.0)
    assert by_key[("matched", "B + full experts")][:2] == [2, pytest.approx(0.0)]  # 1 and -1
    assert by_key[("undeclared", "whole pool")] == [1, pytest.approx(1.0), pytest.approx(1.0)]
    assert by_key[("all", "whole pool")][0] == 3
    weighted = stats.weighted_tau(pool, [p[2] for p in mixed])
    assert by_key[("matched", "whole pool")][2] == pytest.approx((weighted + 1) / 2)
    assert tau.tau_summary(_correlation({"t4": agree[:4]}), relations, kinds) == []


def test_the_report_has_a_tau_table_when_the_oracles_screening_ran(workdir):
    """Screening records count as fine-tuned accuracy where no protocol ran."""
    for task in CANNED:
        d = workdir / "tasks" / files.slug(task)
        result = files.read_json(d / "result.json")
        files.write_json(d / "result.json", {**result, "relation": "matched"})
        knn = files.read_json(d / "selection" / "knn.json")
        knn["scores"].update({f"bit/e{i}": i / 10 for i in range(3, 7)})
        files.write_json(d / "selection" / "knn.json", knn)
        for i in range(2, 7):
            record = {"task": task, "expert": f"bit/e{i}", "kind": "full", "seconds": 1.0}
            record.update(test_accuracies=[i / 10], median_test_accuracy=i / 10)
            files.write_json(d / "oracle_screening1" / f"e{i}.json", record)
    results = report.load_results(workdir)
    assert all(len(accs) == 7 for accs in report.finetuned(results).values())
    config = transfer.get_config("smoke")
    report.write_report(workdir, config)
    summary = (workdir / "report" / "summary.md").read_text()
    assert "| kNN | matched | whole pool | 4 |" in summary and "median weighted tau" in summary
    # results.json keeps the screening runs apart, for judging proxies over seeds.
    for entry in files.read_json(workdir / "report" / "results.json")["tasks"]:
        assert entry["screened"] == {
            f"bit/e{i}": {"accuracy": i / 10, "kind": "full"} for i in range(2, 7)
        }


def test_report_without_results_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no finished task"):
        report.write_report(tmp_path, transfer.get_config("smoke"))


def test_results_json_and_report_dir(workdir, tmp_path_factory):
    config = transfer.get_config("cpu")
    config.report.bootstrap_samples = 200
    config.report.plots = False
    elsewhere = tmp_path_factory.mktemp("demo_report")
    config.report.dir = str(elsewhere)
    paths = report.write_report(workdir, config)
    assert paths["results"] == str(elsewhere / "results.json")
    assert not (workdir / "report").exists()
    record = files.read_json(elsewhere / "results.json")
    assert record["table"]["knn"]["all"]["mean"] == pytest.approx(
        100 * np.mean([0.81, 0.62, 0.91, 0.4])
    )
    by_task = {t["task"]: t for t in record["tasks"]}
    first = by_task['task_n1(x="a")']
    assert first["short"] == "task_n1/a" and first["methods"]["knn"]["pick"] == "bit/e1"
    assert first["knn_scores"]["bit/e2"] == 0.5
    assert first["finetuned_accuracy"]["bit/baseline"] == pytest.approx(0.7)
    assert record["totals"]["knn"] == {"selection_seconds": 8.0, "finetune_seconds": 120.0}
    # The settings a multi-seed headline checks its seeds share (not the seed itself).
    assert record["protocol"]["finetune.epochs"] == list(config.finetune.epochs)
    assert record["protocol"]["finetune.learning_rates"] == list(config.finetune.learning_rates)
    assert "seed" not in record["protocol"] and "image_size" in record["protocol"]


def test_the_summary_quotes_the_probes(workdir, tmp_path_factory):
    config = transfer.get_config("cpu")
    config.report.update(bootstrap_samples=50, plots=False)
    config.report.dir = str(tmp_path_factory.mktemp("report"))
    config.report.probes = str(workdir / "probes.json")
    report.write_report(workdir, config)
    summary = (Path(config.report.dir) / "summary.md").read_text()
    assert "Missing: " in summary  # named but not there: said so
    files.write_json(workdir / "probes.json", {"summary_line": "Specialisation probes: 3/4."})
    report.write_report(workdir, config)
    summary = (Path(config.report.dir) / "summary.md").read_text()
    assert "## Specialisation probes\n\nSpecialisation probes: 3/4." in summary


def test_the_summary_says_it_is_one_seed_and_quotes_the_benchs_spread(workdir, tmp_path):
    config = transfer.get_config("cpu")
    config.report.update(bootstrap_samples=50, plots=False, dir=str(tmp_path / "report"))
    config.report.bench_headline = str(tmp_path / "headline.json")
    report.write_report(workdir, config)
    summary = (tmp_path / "report" / "summary.md").read_text()
    # No bench of the user's own: the project's committed headline is quoted instead.
    assert "One upstream seed" in summary
    assert str(seed_headline.COMMITTED_HEADLINE) in summary
    headline = {
        "reference": "baseline",
        "seeds_used": [0, 1],
        "methods": {"knn": {"all": {"seed_gains": [0.012, 0.044], "spread": 0.032}}},
    }
    files.write_json(tmp_path / "headline.json", headline)
    report.write_report(workdir, config)
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "2 seeds" in summary and "knn +1.2% to +4.4% (spread 3.2 points)" in summary
    config.report.bench_headline = ""
    report.write_report(workdir, config)
    assert "upstream seed" not in (tmp_path / "report" / "summary.md").read_text()


def test_results_json_keeps_each_tasks_declared_relation(workdir, tmp_path):
    path = workdir / "tasks" / files.slug("task_n2") / "result.json"
    files.write_json(path, {**files.read_json(path), "relation": "matched"})
    config = transfer.get_config("cpu")
    config.report.update(bootstrap_samples=50, plots=False, dir=str(tmp_path / "report"))
    report.write_report(workdir, config)
    tasks = {t["task"]: t for t in files.read_json(tmp_path / "report" / "results.json")["tasks"]}
    assert tasks["task_n2"]["relation"] == "matched"
    assert tasks["task_t1"]["relation"] is None  # a task that declares none


def test_one_run_per_task_gives_group_means_without_intervals():
    assert report._cell({"mean": 50.0, "low": 50.0, "high": 50.0}) == "50.0"
    assert report._cell({"mean": 50.0, "low": 49.0, "high": 51.5}) == "50.0 [49.0–51.5]"
    config = transfer.get_config("cpu")
    one = [{"methods": {"knn": {"test_accuracies": [0.5]}, "baseline": {"test_accuracies": [0.4]}}}]
    assert "its one run, so the group means have no interval" in report._intro_lines(one, config)[2]
    two = [{"methods": {"knn": {"test_accuracies": [0.5, 0.6]}}}]
    assert "percentile-bootstrap intervals" in report._intro_lines(two, config)[2]

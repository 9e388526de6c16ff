"""The bench README writer on canned benchmark files: tables, headline targets, and
missing parts reported as missing."""

from vtab_eval import files
from vtab_eval.bench import readme

BASE, E1, E2 = "bit/a/u/baseline", "bit/a/u/e1", "bit-adapter/a/u/e2"


def _tuned(**fields) -> dict:
    """A fine-tuning record: the fields the run directory checks, and ``fields``."""
    return {"test_accuracies": [0.5], "median_test_accuracy": 0.5, **fields}


def _selected(**fields) -> dict:
    """A selection record: the fields the run directory checks, and ``fields``."""
    return {"pick": E1, "seconds": 1.0, "cost_seconds": 1.0, "details": {}, **fields}


def _transfer(bench_dir):
    tasks, runs = [], {"t1": (0.50, 0.60, 0.62), "t2": (0.80, 0.80, 0.84)}
    for name, (base, knn, oracle) in runs.items():
        methods = {
            "baseline": {"pick": BASE, "median_test_accuracy": base, "selection_seconds": 0.0},
            "knn": {"pick": E1, "median_test_accuracy": knn, "selection_seconds": 2.0},
            "oracle": {"pick": E2, "median_test_accuracy": oracle, "selection_seconds": 9.0},
        }
        tasks.append(
            {
                "task": name,
                "short": name,
                "group": "natural",
                "num_classes": 3,
                "methods": methods,
                "knn_scores": {BASE: 0.4, E1: 0.7, E2: 0.6},
                "finetuned_accuracy": {},
            }
        )
        # E2's module was loaded for this run: 4 of its 18 s, left out of every cost.
        for expert, seconds, build in ((BASE, 10.0, 0.0), (E1, 12.0, 0.0), (E2, 18.0, 4.0)):
            files.write_json(
                bench_dir / "transfer" / "tasks" / name / "finetune" / f"{files.slug(expert)}.json",
                _tuned(task=name, expert=expert, seconds=seconds, build_seconds=build),
            )
        # The oracle's candidates are the experts, not the baseline (scored -1).
        files.write_json(
            bench_dir / "transfer" / "tasks" / name / "selection" / "oracle.json",
            _selected(task=name, selector="oracle", scores={BASE: -1.0, E1: knn, E2: oracle}),
        )
    table = {
        m: {g: {"mean": v, "low": v - 1.0, "high": v + 1.0, "tasks": 2} for g in ("all", "natural")}
        for m, v in (("baseline", 65.0), ("knn", 70.0), ("oracle", 73.0))
    }
    files.write_json(
        bench_dir / "transfer" / "report" / "results.json",
        {"preset": "cpu", "image_size": 32, "confidence": 0.95, "table": table, "tasks": tasks},
    )


def _transfer_results(bench_dir) -> dict:
    """The canned transfer files, and their results.json to edit and write back."""
    _transfer(bench_dir)
    return files.read_json(bench_dir / "transfer" / "report" / "results.json")


def test_readme_from_canned_files(tmp_path):
    _transfer(tmp_path)
    files.write_json(
        tmp_path / "feature_extraction.json",
        {
            "measurements": {
                "x": {
                    "handle": "hub/bit/e1",
                    "image_size": 32,
                    "batch": 256,
                    "bare_images_per_second": 1000.0,
                    "hub_images_per_second": 950.0,
                    "ratio": 0.95,
                }
            }
        },
    )
    text = readme.write(tmp_path).read_text()
    assert "| Performance Proxy (kNN) | 70.0 [69.0–71.0] | - | - | 70.0 [69.0–71.0] |" in text
    # (70 - 65) / 65 = +7.7% relative; (70 - 65) / (73 - 65) = 62% of the oracle's gain.
    assert "+7.7% relative; target >= +3.6% (the paper's VTAB-1k headline): met." in text
    assert "kNN reaches 62% of the oracle's gain; target >= 80%: NOT met." in text
    assert (
        "| t1 | natural | 50.0 | full:e1 | 70.0 | 60.0 | 10.0 | adapter:e2 | 62.0 | 2 | 2 |" in text
    )
    # Selection 4 s; one candidate: median 12 s per task, 24 s; the oracle's two
    # candidates, without module loading: 2 x (12 + 14) = 52 s, and 8 s of loading.
    assert "24 s, 6.0x the selection" in text
    assert "(2 experts per task; the oracle): 52 s, 13x the kNN selection there (plus 8 s" in text
    assert "| hub/bit/e1 | 32 | 256 | 1,000 | 950 | 0.950 |" in text
    assert "A row over fewer tasks" not in text  # every row covers both tasks
    assert "Missing: `knn_kernel.json`" in text


def test_readme_with_the_oracles_screening_in_another_workdir(tmp_path):
    bench, workdir = tmp_path / "bench", tmp_path / "work"
    _transfer(bench)
    workdir.mkdir()
    (bench / "transfer" / "tasks").rename(workdir / "tasks")
    for task in ("t1", "t2"):
        for expert in (E1, E2):
            files.write_json(
                workdir / "tasks" / task / "oracle_screening1" / f"{files.slug(expert)}.json",
                _tuned(task=task, expert=expert, seconds=6.0, build_seconds=1.0, screen_repeats=1),
            )
    text = readme.write(bench, workdir).read_text()
    assert "after screening every expert" in text
    assert "| adapter:e2 | 62.0 | 2 | 2 |" in text  # two candidates screened
    # Screening 4 x 5 s = 20 s; the whole protocol on the pool: 2 x 24 s.
    assert "of one trial each, on seeds of their own): 20 s, 5x the kNN selection there" in text
    assert "(estimated: 2 x one candidate): 48 s, 12x the selection" in text


def test_an_oracle_on_some_tasks_is_compared_on_those_tasks_only(tmp_path):
    results = _transfer_results(tmp_path)
    del results["tasks"][1]["methods"]["oracle"]  # the oracle ran on t1 only
    results["table"]["oracle"]["all"]["tasks"] = 1
    results["table"]["random"] = results["table"]["baseline"]  # sorts after "knn"
    files.write_json(tmp_path / "transfer" / "report" / "results.json", results)
    text = readme.write(tmp_path).read_text()
    assert "| Oracle (best in hindsight) (1 of 2 tasks) |" in text
    assert "A row over fewer tasks averages, in every column, only its own tasks." in text
    rows = ("| Baseline", "| Random", "| Performance Proxy", "| Oracle")
    assert sorted(rows, key=text.index) == list(rows)  # the paper's order
    assert "| t2 | natural | 80.0 | full:e1 | 70.0 | 80.0 | 10.0 | - | - | - | - |" in text
    # On t1: baseline 50, kNN 60, oracle 62: (60 - 50) / (62 - 50) = 83%.
    assert "Oracle on 1 of 2 tasks only (t1): there, baseline 50.0, kNN 60.0, oracle 62.0" in text
    assert "kNN reaches 83% of the oracle's gain; target >= 80%: met on these tasks" in text


def test_readme_without_the_oracle_says_so(tmp_path):
    results = _transfer_results(tmp_path)
    del results["table"]["oracle"]
    for task in results["tasks"]:
        del task["methods"]["oracle"]
    files.write_json(tmp_path / "transfer" / "report" / "results.json", results)
    text = readme.write(tmp_path).read_text()
    assert "target >= +3.6% (the paper's VTAB-1k headline): met." in text
    assert "- Missing: the oracle row" in text


def test_readme_says_what_is_missing(tmp_path):
    text = readme.write(tmp_path).read_text()
    assert "Missing: `transfer/report/results.json`" in text
    assert "Missing: `feature_extraction.json`" in text


def test_a_screening_under_way_gives_the_pool_estimate_and_no_measured_oracle(tmp_path):
    results = _transfer_results(tmp_path)
    del results["table"]["oracle"]
    for task in results["tasks"]:
        del task["methods"]["oracle"]
    del results["tasks"][0]["methods"]["knn"]  # t1's kNN fine-tuning is missing too
    files.write_json(tmp_path / "transfer" / "report" / "results.json", results)
    files.write_json(
        tmp_path / "transfer" / "tasks" / "t1" / "oracle_screening1" / "e1.json",
        _tuned(task="t1", expert=E1, seconds=6.0, screen_repeats=1),
    )
    text = readme.write(tmp_path).read_text()
    # The pool is the two experts kNN scored (not the baseline), whatever was screened.
    assert "(estimated: 2 x one candidate): 48 s" in text
    assert "The oracle's screening" not in text
    assert "- Missing: the oracle row" in text

"""Ensembles of the top experts in a transfer run, end to end on the smoke preset: the
members, the kept probabilities, the shared runs, a rerun with a larger ensemble, and
bad settings."""

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.bad_input import fails_cleanly
from vtab_eval import files, runner
from vtab_eval import main as vtab_main
from vtab_eval.configs import transfer
from vtab_eval.finetune import ensemble, heads
from vtab_eval.report import ensembles as report_ensembles

SPEC = 'mini_dsprites(predicted_attribute="label_orientation",num_classes=16,config="tiny")'
ENSEMBLES = ("ensemble_heads", "ensemble")  # in table order
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def finished(hub_root, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    config = transfer.get_config("smoke")
    config.update(
        pool=str(hub_root), suite=SPEC, workdir=str(workdir), selectors="knn,baseline",
        data_dir=str(tmp_path_factory.mktemp("tfds")), ensemble=2,
    )  # fmt: skip
    log = []
    paths = runner.run(config, log=log.append)
    return config, workdir, paths, log


def _task_dir(workdir):
    return workdir / "tasks" / files.slug(SPEC)


def _ranking(task_dir) -> list[str]:
    """kNN's candidates (B included, as the presets say) by score, ties in pool order."""
    scores = files.read_json(task_dir / "selection" / "knn.json")["scores"]
    return sorted(scores, key=lambda e: -scores[e])  # the pool's order: sorted ids


def test_both_ensembles_combine_the_top_candidates_of_the_proxy(finished):
    config, workdir, _, _ = finished
    task_dir = _task_dir(workdir)
    methods = files.read_json(task_dir / "result.json")["methods"]
    assert sorted(methods) == ["baseline", "ensemble", "ensemble_heads", "knn"]
    top = _ranking(task_dir)[:2]
    knn_cost = files.read_json(task_dir / "selection" / "knn.json")["cost_seconds"]
    for name in ENSEMBLES:
        entry = methods[name]
        assert (entry["size"], entry["proxy"], entry["candidates"]) == (2, "knn", top)
        assert entry["selection_seconds"] == knn_cost
        (trial,) = entry["trials"]  # the smoke preset: one trial of one final run
        assert set(trial["members"]) <= set(top) and len(entry["test_accuracies"]) == 1
        assert math.isclose(sum(trial["weights"].values()), 1.0)
        assert entry["pick"] == "+".join(dict.fromkeys(trial["members"]))
        assert [p["members"] for p in entry["by_members"]] == [1, 2]
        assert entry["by_members"][-1]["test_accuracies"] == entry["test_accuracies"]
        assert 0 < entry["by_members"][0]["finetune_seconds"] < entry["finetune_seconds"]
    assert {h["C"] for h in methods["ensemble_heads"]["heads"]} <= set(heads.C_GRID)


def test_the_fine_tuned_candidates_keep_probabilities_and_share_the_picks_runs(finished):
    config, workdir, _, log = finished
    task_dir = _task_dir(workdir)
    methods = files.read_json(task_dir / "result.json")["methods"]
    top = _ranking(task_dir)[:2]
    tuned = {r["expert"] for r in map(files.read_json, (task_dir / "finetune").glob("*.json"))}
    assert tuned == set(top) | {methods["knn"]["pick"], methods["baseline"]["pick"]}
    assert sum(line.startswith("  fine-tuning ") for line in log) == len(tuned)  # each once
    alone = methods["ensemble"]["by_members"][0]["test_accuracies"]
    runs = ensemble.read_member_runs(task_dir / "finetune" / f"{files.slug(top[0])}.npz")
    assert runs.test_log_probs.dtype == np.float16
    assert runs.val_log_probs.shape == (1, len(runs.val_labels), 16)  # one trial, 16 classes
    # The top candidate alone is its own runs (its record's, up to float16 ties).
    record = files.read_json(task_dir / "finetune" / f"{files.slug(top[0])}.json")
    assert abs(alone[0] - record["test_accuracies"][0]) <= 0.1
    assert alone == [ensemble.accuracy(np.exp(runs.test_log_probs[0]), runs.test_labels)]


def test_the_report_has_both_ensembles_against_members_and_the_single_pick(finished):
    config, workdir, paths, _ = finished
    summary = (workdir / "report" / "summary.md").read_text()
    assert "## Ensembles of the top experts" in summary
    assert (
        "| Ensemble of the top experts (fine-tuned) |"
        in (workdir / "report" / "table.md").read_text()
    )
    with open(workdir / "report" / "ensembles.csv") as f:
        rows = list(csv.DictReader(f))
    # Per method: the kNN pick's row, then the top 1 and the top 2 combined.
    assert [(r["method"], r["members"]) for r in rows] == [
        (m, n) for name in ENSEMBLES for m, n in (("knn pick", "1"), (name, "1"), (name, "2"))
    ]
    assert rows[0]["cost_vs_pick"] == "1.000"


def test_the_report_rows_on_hand_made_entries():
    def entry(accuracies, seconds):
        return {
            "proxy": "knn",
            "by_members": [
                {"median_test_accuracy": a, "finetune_seconds": s}
                for a, s in zip(accuracies, seconds, strict=True)
            ],
        }

    results = [
        {"task": "a", "group": "natural", "methods": {
            "knn": {"median_test_accuracy": 0.5, "finetune_seconds": 10.0},
            "ensemble": entry([0.5, 0.7], [10.0, 25.0])}},
        {"task": "b", "group": "structured", "methods": {
            "knn": {"median_test_accuracy": 0.3, "finetune_seconds": 10.0},
            "ensemble": entry([0.4, 0.4], [10.0, 15.0])}},
    ]  # fmt: skip
    got = report_ensembles.rows(results, "ensemble")
    nan = None
    assert got == [
        ["knn pick", 1, 50.0, nan, 30.0, 40.0, 2, 20.0, 1.0],
        ["ensemble", 1, 50.0, nan, 40.0, 45.0, 2, 20.0, 1.0],
        ["ensemble", 2, 70.0, nan, 40.0, pytest.approx(55.0), 2, 40.0, 2.0],
    ]


def test_a_larger_ensemble_on_a_rerun_fine_tunes_only_its_new_candidate(finished):
    config, workdir, _, _ = finished
    task_dir = _task_dir(workdir)
    kept = {p.stem for p in (task_dir / "finetune").glob("*.npz")}
    third = _ranking(task_dir)[2]
    bigger = config.copy_and_resolve_references()
    bigger.ensemble = 3  # not a result setting: the entries are rebuilt, nothing refused
    log = []
    runner.run(bigger, log=log.append)
    fine_tuned = [line for line in log if line.startswith("  fine-tuning ")]
    assert len(fine_tuned) == (0 if files.slug(third) in kept else 1)
    methods = files.read_json(task_dir / "result.json")["methods"]
    assert all(methods[name]["size"] == 3 for name in ENSEMBLES)
    assert [p["members"] for p in methods["ensemble"]["by_members"]] == [1, 2, 3]


def _config(hub_root, workdir, **overrides):
    config = transfer.get_config("smoke")
    config.update(pool=str(hub_root), workdir=str(workdir), suite="mini_mnist")
    config.update({"selectors": "knn,baseline", **overrides})
    return config


@pytest.mark.parametrize(
    ("overrides", "culprit"),
    [
        ({"ensemble": 1}, "config.ensemble=1: must be 0 (off) or the number of top experts"),
        ({"ensemble": -2}, "config.ensemble=-2: must be"),
        ({"ensemble": 5}, "config.ensemble=5: more than the 4 candidates"),
        ({"ensemble": 2, "ensemble_proxy": "random"}, "ensemble_proxy='random' is no performance"),
        ({"ensemble": 2, "ensemble_proxy": "nope"}, "unknown selector 'nope'"),
        ({"selectors": "knn,ensemble"}, "names ensemble, an ensemble of the top experts"),
    ],
)
def test_a_bad_ensemble_setting_is_one_line(hub_root, tmp_path, overrides, culprit):
    config = _config(hub_root, tmp_path / "w", **overrides)
    fails_cleanly(lambda: vtab_main.execute(config), "vtab_eval.main", culprit)
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("value", ["2.5", "1", "off"])
def test_a_bad_ensemble_flag_is_one_line_through_the_binary(value, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "vtab_eval.main", f"--workdir={tmp_path}/w", "--config.pool=x",
         f"--config.ensemble={value}"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("vtab_eval.main:")]
    assert f"config.ensemble={value}" in line
    assert not (tmp_path / "w").exists()

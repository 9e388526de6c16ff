"""The evaluation loop end to end on the smoke preset: files, resume, the binary."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vtab_eval import files, runner
from vtab_eval.configs import transfer

SPEC = 'mini_dsprites(predicted_attribute="label_orientation",num_classes=16,config="tiny")'
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def finished(hub_root, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    config = transfer.get_config("smoke")
    config.update(
        pool=str(hub_root), suite=SPEC, workdir=str(workdir),
        data_dir=str(tmp_path_factory.mktemp("tfds")),
    )  # fmt: skip
    log = []
    paths = runner.run(config, log=log.append)
    return config, workdir, paths, log


def test_a_run_writes_selections_fine_tuning_results_and_the_report(finished):
    config, workdir, paths, log = finished
    task_dir = workdir / "tasks" / files.slug(SPEC)
    result = files.read_json(task_dir / "result.json")
    assert sorted(result["methods"]) == ["baseline", "domain", "knn", "label", "random"]
    assert result["group"] == "structured" and result["num_classes"] == 16
    for name in result["methods"]:
        selection = files.read_json(task_dir / "selection" / f"{name}.json")
        assert set(selection) >= {"scores", "pick", "seconds", "cost_seconds"}
        assert len(selection["scores"]) == 4
    picks = {m["pick"] for m in result["methods"].values()}
    assert len(list((task_dir / "finetune").glob("*.json"))) == len(picks)  # shared runs
    assert Path(paths["markdown"]).exists() and (workdir / "report" / "table.csv").exists()
    assert any(line.startswith("[1/1]") for line in log)


def test_a_rerun_resumes_and_refuses_a_changed_config(finished):
    config, workdir, _, _ = finished
    result = workdir / "tasks" / files.slug(SPEC) / "result.json"
    stamp = result.stat().st_mtime_ns
    log = []
    runner.run(config, log=log.append)
    assert result.stat().st_mtime_ns == stamp
    assert any("finished earlier" in line for line in log)
    changed = config.copy_and_resolve_references()
    changed.finetune.final_repeats = 5
    with pytest.raises(ValueError, match="different config.finetune"):
        runner.run(changed, log=log.append)


def test_suite_resolution():
    assert len(runner.resolve_suite("embedded")) == 12
    assert runner.resolve_suite(f"{SPEC}; mini_mnist") == [SPEC, "mini_mnist"]
    with pytest.raises(ValueError, match="names no tasks"):
        runner.resolve_suite(" ; ")


def test_the_binary_rewrites_the_report(finished):
    # A subprocess: the binary defines --config, as experts.train does, so it is never
    # imported next to it.
    config, workdir, _, _ = finished
    (workdir / "report" / "summary.md").unlink()
    command = [
        sys.executable, "-m", "vtab_eval.main", "--config=vtab_eval/configs/transfer.py:smoke",
        f"--workdir={workdir}", "--report_only",
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "report:" in out.stdout and (workdir / "report" / "summary.md").exists()

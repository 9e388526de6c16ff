"""The evaluation loop end to end on the smoke preset: files, resume, the oracle, the
binary."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.vtab_eval.hub_fixtures import probe_folder
from vtab_eval import files, run_dir, runner
from vtab_eval.configs import transfer
from vtab_eval.pool import expert_pool as pool
from vtab_eval.report import probes
from vtab_eval.report import tables as report

SPEC = 'mini_dsprites(predicted_attribute="label_orientation",num_classes=16,config="tiny")'
SPEC4 = 'mini_dsprites(predicted_attribute="label_x_position",num_classes=4,config="tiny")'
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def finished(hub_root, data_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    config = transfer.get_config("smoke")
    config.update(pool=str(hub_root), suite=SPEC, workdir=str(workdir), data_dir=data_dir)
    config.probes = str(probe_folder(tmp_path_factory.mktemp("probes"), ["red", "green"]))
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


def test_the_probes_are_embedded_with_the_tasks_and_reported(finished):
    config, workdir, paths, log = finished
    record = files.read_json(workdir / "report" / "probes" / "probes.json")
    assert len(record["matrix"]) == 4 and {r["node"] for r in record["probes"]} == {"red", "green"}
    # The runner's own feature cache holds the probes: the benchmark needs no reload.
    images = probes.ProbeImages(config.probes)
    the_pool = pool.open_pool(config.pool)
    store = runner.Runner(config, the_pool, [SPEC], ["knn"], workdir).store
    assert all(store.cache_path(e.handle, images, "all").exists() for e in the_pool.experts)
    assert "## Specialisation probes" in Path(paths["markdown"]).read_text()
    assert any(line.startswith("Specialisation probes:") for line in log)


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


def _oracle_runner(config, log):
    return runner.Runner(
        config=config,
        pool=pool.open_pool(config.pool),
        specs=runner.resolve_suite(config.suite),
        selectors=["oracle", "baseline"],
        workdir=Path(config.workdir),
        log=log.append,
    )


def test_the_oracle_readies_each_module_once_for_every_task(hub_root, data_dir, tmp_path):
    config = transfer.get_config("smoke")
    config.update(
        pool=str(hub_root), suite=f"{SPEC};{SPEC4}", workdir=str(tmp_path), data_dir=data_dir
    )
    config.selection.include_baseline = False  # the paper's oracle: experts only
    config.finetune.tuner_cache = 4  # room for every program: each is built once
    log = []
    run = _oracle_runner(config, log)
    run.run()
    experts = [e.id for e in run.pool.experts]
    # One screening job per candidate, for both tasks; the baseline is no candidate.
    assert sum(line.startswith("oracle screening ") for line in log) == 3
    jobs = sum(line.startswith(("oracle screening ", "fine-tuning ")) for line in log)
    # A job makes its module ready once (not once per task): red's program and the
    # corner modules' are built once, and the other jobs' corner modules have their
    # weights loaded into the latter.
    assert len(experts) == 4 and run.tuners.builds == 2
    assert run.tuners.builds + run.tuners.weight_loads == jobs
    assert run.tuners.max_classes == 16  # the suite's largest task
    for spec in (SPEC, SPEC4):
        task_dir = tmp_path / "tasks" / files.slug(spec)
        results = {
            r["expert"]: r
            for r in map(files.read_json, (task_dir / "oracle_screening_all").glob("*.json"))
        }
        candidates = [e for e in experts if not e.endswith("baseline")]
        assert sorted(results) == sorted(candidates)
        assert all(r["seconds"] >= r["build_seconds"] >= 0 for r in results.values())
        oracle = files.read_json(task_dir / "selection" / "oracle.json")
        assert oracle["scores"] == {
            e: (results[e]["median_test_accuracy"] if e in candidates else -1.0) for e in experts
        }
        # Its cost is the fine-tuning it needs, though it ran before the selection.
        cost = sum(results[e]["seconds"] for e in candidates)
        assert oracle["cost_seconds"] == pytest.approx(cost)
    # Each job's build or weight load counts in its first task only.
    first = files.read_json(tmp_path / "tasks" / files.slug(SPEC) / "result.json")
    built = [
        files.read_json(p)["build_seconds"] > 0
        for kind in ("finetune", "oracle_screening_all")
        for p in (tmp_path / "tasks").glob(f"*/{kind}/*.json")
    ]
    assert sum(built) == jobs and first["num_classes"] == 16

    # A lost result is redone alone; cache size and head width do not change results,
    # but a task wider than max_classes is refused.
    lost = tmp_path / "tasks" / files.slug(SPEC4) / "oracle_screening_all"
    next(p for p in lost.glob("*.json") if "green" in p.name).unlink()
    (lost.parent / "result.json").unlink()
    config.finetune.max_classes = 3
    with pytest.raises(ValueError, match="4 classes, more than config.finetune.max_classes=3"):
        _oracle_runner(config, log).run()
    config.finetune.update(max_classes=0, tuner_cache=1)
    rerun = _oracle_runner(config, log)
    rerun.run()
    assert rerun.tuners.builds == 1 and rerun.tuners.max_classes == 4
    assert len(list(lost.glob("*.json"))) == 3


def test_the_oracle_picks_on_screening_runs_and_is_judged_on_fresh_ones(
    hub_root, data_dir, tmp_path
):
    config = transfer.get_config("smoke")
    config.update(pool=str(hub_root), suite=SPEC4, workdir=str(tmp_path), data_dir=data_dir)
    config.finetune.final_repeats = 2
    config.oracle.screen_repeats = 1
    _oracle_runner(config, []).run()
    task_dir = tmp_path / "tasks" / files.slug(SPEC4)
    screens = {
        r["expert"]: r
        for r in map(files.read_json, (task_dir / "oracle_screening1").glob("*.json"))
    }
    # B is a candidate by default, so it is screened with the three experts.
    assert len(screens) == 4 and all(len(r["test_accuracies"]) == 1 for r in screens.values())
    oracle = files.read_json(task_dir / "selection" / "oracle.json")
    assert oracle["cost_seconds"] == pytest.approx(sum(r["seconds"] for r in screens.values()))
    assert all(oracle["scores"][e] == r["median_test_accuracy"] for e, r in screens.items())
    # Only the picks get the whole protocol, on seeds the screening never used.
    tuned = {r["expert"]: r for r in map(files.read_json, (task_dir / "finetune").glob("*.json"))}
    baseline = next(e for e in screens if e.endswith("/baseline"))
    assert oracle["pick"] in tuned and sorted(tuned) == sorted({oracle["pick"], baseline})
    whole = tuned[oracle["pick"]]
    assert len(whole["test_accuracies"]) == 2
    screening_seeds = {f["seed"] for r in screens.values() for f in r["trials"][0]["finals"]}
    reported_seeds = {f["seed"] for f in whole["trials"][0]["finals"]}
    assert len(reported_seeds) == 2 and not screening_seeds & reported_seeds
    result = files.read_json(task_dir / "result.json")
    assert result["methods"]["oracle"]["test_accuracies"] == whole["test_accuracies"]


def test_the_report_keeps_the_methods_asked_for(finished, tmp_path):
    config, workdir, _, _ = finished
    config = config.copy_and_resolve_references()
    config.report.update(dir=str(tmp_path), plots=False)
    report.write_report(workdir, config, methods=["knn", "baseline"])
    assert set(files.read_json(tmp_path / "results.json")["table"]) == {"knn", "baseline"}


def test_suite_resolution():
    assert len(runner.resolve_suite("embedded")) == 13
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
        f"--workdir={workdir}", "--config.report_only=true",
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "report:" in out.stdout and (workdir / "report" / "summary.md").exists()


def test_a_rerun_with_other_selectors_keeps_the_earlier_methods(finished):
    config, workdir, _, _ = finished
    other = config.copy_and_resolve_references()
    other.selectors = "knn_experts"
    paths = runner.run(other, log=lambda line: None)
    result = files.read_json(workdir / "tasks" / files.slug(SPEC) / "result.json")
    assert sorted(result["methods"]) == [
        "baseline",
        "domain",
        "knn",
        "knn_experts",
        "label",
        "random",
    ]
    # The report shows the methods asked for; report_only without selectors, all.
    assert "knn_experts" in files.read_json(paths["results"])["table"]
    everything = report.write_report(workdir, config, methods=None)
    assert len(files.read_json(everything["results"])["table"]) == 6


def _image_folder(root: Path, classes) -> Path:
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), (60 * label, 10 * i, 0)).save(root / name / f"{i}.png")
    return root


def test_one_relative_spec_in_two_places_is_two_tasks(hub_root, tmp_path, monkeypatch):
    """A result is keyed by what its task is (the folder's absolute path and files),
    never by the spec's text: `t` in another directory is recomputed, not reused."""
    config = transfer.get_config("smoke")
    config.update(pool=str(hub_root), suite='image_folder(path="t")', selectors="baseline")
    config.workdir = str(tmp_path / "w")
    counts = []
    for place, classes in (("one", ("a", "b")), ("two", ("a", "b", "c"))):
        _image_folder(tmp_path / place / "t", classes)
        monkeypatch.chdir(tmp_path / place)
        runner.run(config, log=lambda line: None)
        results = {r["task"]: r for r in run_dir.RunDir(tmp_path / "w").results()}
        folder = os.path.realpath(tmp_path / place / "t")
        counts.append(results[f'image_folder(path="{folder}")']["num_classes"])
    assert counts == [2, 3]

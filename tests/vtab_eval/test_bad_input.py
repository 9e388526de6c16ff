"""Bad input to `vtab_eval.main`, case by case, as a new user would give it: each ends
in one line naming the culprit, a non-zero exit, and no file written or lost
(tests/bad_input.py says how each is checked)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fanout.flags
from tests.bad_input import fails_cleanly
from tests.vtab_eval import hub_fixtures
from vtab_eval import main as vtab_main
from vtab_eval.configs import tasks as tasks_config
from vtab_eval.configs import transfer
from vtab_eval.tasks import build

PROGRAM = "vtab_eval.main"
REPO = Path(__file__).resolve().parents[2]
EXPERT = "tests/experts/bit/tiny/tiny_upstream/red/1"


def image_folder(root: Path, per_class: int = 12, classes=("dark", "light")) -> Path:
    rng = np.random.default_rng(0)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 100, (16, 16, 3)) + 150 * label
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def config_for(pool, workdir, suite, **overrides):
    config = transfer.get_config("smoke")
    config.update(pool=str(pool), workdir=str(workdir), suite=suite, selectors="knn,baseline")
    config.update(overrides)
    return config


def folder_spec(path) -> str:
    return f'image_folder(path="{path}")'


@pytest.fixture(scope="module")
def finished(hub_root, tmp_path_factory):
    """A finished smoke run on a small image folder, for the cases that must keep it."""
    folder = image_folder(tmp_path_factory.mktemp("task"))
    workdir = tmp_path_factory.mktemp("run")
    config = config_for(hub_root, workdir, folder_spec(folder))
    vtab_main.execute(config)
    assert list(workdir.glob("tasks/*/result.json"))
    return config


def run(config):
    return lambda: vtab_main.execute(config)


def test_no_pool(tmp_path):
    fails_cleanly(run(config_for("", tmp_path / "w", "mini_mnist")), PROGRAM, "no pool")
    assert not (tmp_path / "w").exists()


def test_a_pool_path_that_does_not_exist(tmp_path):
    config = config_for(tmp_path / "nowhere", tmp_path / "w", "mini_mnist")
    fails_cleanly(run(config), PROGRAM, str(tmp_path / "nowhere"), "does not exist")


def test_an_unknown_selector(hub_root, tmp_path):
    config = config_for(hub_root, tmp_path / "w", "mini_mnist", selectors="knn,nope")
    fails_cleanly(run(config), PROGRAM, "nope")


def test_no_selector(hub_root, tmp_path):
    config = config_for(hub_root, tmp_path / "w", "mini_mnist", selectors=" , ")
    fails_cleanly(run(config), PROGRAM, "--config.selectors names no selector")


def test_a_suite_without_tasks(hub_root, tmp_path):
    fails_cleanly(run(config_for(hub_root, tmp_path, " ; ")), PROGRAM, "names no tasks")


def test_an_unknown_task(hub_root, tmp_path):
    fails_cleanly(run(config_for(hub_root, tmp_path, "mini_nope")), PROGRAM, "mini_nope")


def test_a_malformed_task_spec(hub_root, tmp_path):
    fails_cleanly(run(config_for(hub_root, tmp_path, "mini_mnist(3")), PROGRAM, "mini_mnist(3")


def test_an_image_folder_that_does_not_exist(hub_root, tmp_path):
    spec = folder_spec(tmp_path / "missing")
    fails_cleanly(
        run(config_for(hub_root, tmp_path / "w", spec)), PROGRAM, str(tmp_path / "missing")
    )
    assert not (tmp_path / "w" / "run.json").exists()


def test_an_image_folder_with_one_class(hub_root, tmp_path):
    folder = image_folder(tmp_path / "task", classes=("only",))
    spec = folder_spec(folder)
    fails_cleanly(run(config_for(hub_root, tmp_path / "w", spec)), PROGRAM, str(folder), ">= 2")


def test_a_class_folder_without_images(hub_root, tmp_path):
    folder = image_folder(tmp_path / "task")
    (folder / "empty").mkdir()
    (folder / "empty" / "notes.txt").write_text("no images here")
    spec = folder_spec(folder)
    fails_cleanly(run(config_for(hub_root, tmp_path / "w", spec)), PROGRAM, "'empty'", "no images")


def test_an_image_folder_with_too_few_images(hub_root, tmp_path):
    folder = image_folder(tmp_path / "task", per_class=1)
    spec = folder_spec(folder)
    fails_cleanly(
        run(config_for(hub_root, tmp_path / "w", spec)), PROGRAM, str(folder), "at least 3"
    )


def test_a_truncated_jpeg(hub_root, tmp_path):
    folder = image_folder(tmp_path / "task")
    Image.new("RGB", (64, 64), (9, 99, 199)).save(tmp_path / "whole.jpg")
    (folder / "dark" / "cut.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes()[:300])
    spec = folder_spec(folder)
    workdir = tmp_path / "w"
    fails_cleanly(
        run(config_for(hub_root, workdir, spec)), PROGRAM, str(folder / "dark" / "cut.jpg")
    )
    assert not (workdir / "features").exists()  # failed before any module ran


def test_a_text_file_named_png(hub_root, tmp_path):
    folder = image_folder(tmp_path / "task")
    (folder / "light" / "fake.png").write_text("not an image")
    spec = folder_spec(folder)
    fails_cleanly(run(config_for(hub_root, tmp_path / "w", spec)), PROGRAM, "fake.png")


def test_a_semicolon_in_a_task_path_is_a_path_not_a_separator(hub_root, tmp_path):
    spec = folder_spec(tmp_path / "a;b")  # the folder does not exist: named whole
    fails_cleanly(run(config_for(hub_root, tmp_path / "w", spec)), PROGRAM, str(tmp_path / "a;b"))


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [("finetune", "final_repeats", 3), ("oracle", "screen_repeats", 2)],
)
def test_a_changed_result_setting_keeps_the_finished_run(finished, section, field, value):
    changed = finished.copy_and_resolve_references()
    changed[section][field] = value
    culprit = f"config.{section}.{field}"
    fails_cleanly(run(changed), PROGRAM, culprit, "run.json", roots=[finished.workdir])


def test_another_pool_keeps_the_finished_run(finished, hub_root, tmp_path):
    changed = finished.copy_and_resolve_references()
    changed.pool = str(hub_root / EXPERT)
    fails_cleanly(run(changed), PROGRAM, "another pool", roots=[finished.workdir])


def test_a_busy_work_directory(finished):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, finished.workdir], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        fails_cleanly(run(finished), PROGRAM, f"pid {holder.pid}", roots=[finished.workdir])
    finally:
        holder.kill()
        holder.wait()


HOLD = """
import sys, time
from vtab_eval import run_dir
with run_dir.RunDir(sys.argv[1]).lock():
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_corrupt_result_file_is_named(finished, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(finished.workdir, workdir)
    [result] = workdir.glob("tasks/*/result.json")
    result.write_text('{"task": ')
    copy = finished.copy_and_resolve_references()
    copy.workdir = str(workdir)
    fails_cleanly(run(copy), PROGRAM, str(result), "invalid JSON", roots=[workdir])


def test_a_corrupt_run_file_is_named(finished, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(finished.workdir, workdir)
    (workdir / "run.json").write_text("[")
    copy = finished.copy_and_resolve_references()
    copy.workdir = str(workdir)
    fails_cleanly(run(copy), PROGRAM, str(workdir / "run.json"), roots=[workdir])


def _copy_of(finished, tmp_path):
    copy = finished.copy_and_resolve_references()
    copy.workdir = str(tmp_path / "copy")
    shutil.copytree(finished.workdir, copy.workdir)
    return copy, Path(copy.workdir)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{}", "has no field"),
        ("[1, 2]", "holds a JSON list"),
        ('{"methods": NaN}', "NaN is not a JSON number"),
        ('{"task": 1e999}', "out of float range"),
    ],
)
def test_a_result_file_of_the_wrong_shape_is_named(finished, tmp_path, content, problem):
    copy, workdir = _copy_of(finished, tmp_path)
    [result] = workdir.glob("tasks/*/result.json")
    result.write_text(content)
    fails_cleanly(run(copy), PROGRAM, str(result), problem, "delete it", roots=[workdir])


def test_a_result_whose_method_lacks_its_accuracy_is_named(finished, tmp_path):
    copy, workdir = _copy_of(finished, tmp_path)
    [path] = workdir.glob("tasks/*/result.json")
    result = json.loads(path.read_text())
    del result["methods"]["knn"]["median_test_accuracy"]
    path.write_text(json.dumps(result))
    call = lambda: vtab_main.execute(copy, report_only=True)  # noqa: E731
    fails_cleanly(call, PROGRAM, str(path), "'knn'", "median_test_accuracy", roots=[workdir])


@pytest.mark.parametrize("kind", ["selection", "finetune"])
def test_a_selection_or_fine_tuning_record_of_the_wrong_shape_is_named(finished, tmp_path, kind):
    copy, workdir = _copy_of(finished, tmp_path)
    [result] = workdir.glob("tasks/*/result.json")
    result.unlink()  # the task is redone from its records
    record = sorted(result.parent.glob(f"{kind}/*.json"))[0]
    record.write_text("[]")
    fails_cleanly(run(copy), PROGRAM, str(record), "delete it", roots=[workdir])


def test_a_truncated_feature_cache_is_named(finished, tmp_path):
    copy, workdir = _copy_of(finished, tmp_path)
    [result] = workdir.glob("tasks/*/result.json")
    result.unlink()
    shutil.rmtree(result.parent / "selection")  # so kNN reads the features again
    for cache in workdir.glob("features/**/*.npz"):
        cache.write_bytes(cache.read_bytes()[:100])
    fails_cleanly(run(copy), PROGRAM, ".npz: not a readable feature cache", "delete it",
                  roots=[workdir])  # fmt: skip


def test_a_huge_task_spec(hub_root, tmp_path):
    spec = "mini_mnist(config=" + "-" * 100_000 + "1)"
    fails_cleanly(
        run(config_for(hub_root, tmp_path / "w", spec)), PROGRAM, "'mini_mnist(config=-", "5000"
    )


def test_an_unknown_suite_to_build(tmp_path):
    config = tasks_config.get_config("cpu")
    config.update(suite="nope", data_dir=str(tmp_path))
    fails_cleanly(
        lambda: build.execute(config), "vtab_eval.tasks.build", "'nope'", "embedded, vtab1k"
    )


def test_a_class_folder_linked_to_the_task_folder(hub_root, tmp_path):
    folder = image_folder(tmp_path / "task")
    (folder / "loop").symlink_to(".")
    config = config_for(hub_root, tmp_path / "w", folder_spec(folder))
    fails_cleanly(run(config), PROGRAM, str(folder / "loop"), "symlink", "remove the link")


def test_a_module_that_takes_one_image_size_only(hub_root, tmp_path):
    fixed = tmp_path / "fixed"
    hub_fixtures.save_module(fixed, hub_fixtures.FixedSize(), hub_fixtures.expert_info("fixed"))
    folder = image_folder(tmp_path / "task")
    config = config_for(f"{hub_root},{fixed}", tmp_path / "w", folder_spec(folder))
    fails_cleanly(run(config), PROGRAM, f"module {fixed}", "16x16", "224, 224", "image_size")


def _pool_copy(hub_root, tmp_path):
    pool = tmp_path / "pool"
    shutil.copytree(hub_root, pool)
    return pool, pool / EXPERT / "expert_info.json"


def test_a_corrupt_expert_info(hub_root, tmp_path):
    pool, info = _pool_copy(hub_root, tmp_path)
    info.write_text("{")
    config = config_for(pool, tmp_path / "w", folder_spec(image_folder(tmp_path / "t")))
    fails_cleanly(run(config), PROGRAM, str(info), roots=[pool])


def test_an_expert_info_whose_feature_dim_is_wrong(hub_root, tmp_path):
    pool, info = _pool_copy(hub_root, tmp_path)
    record = json.loads(info.read_text())
    record["feature_dim"] += 5
    info.write_text(json.dumps(record))
    config = config_for(pool, tmp_path / "w", folder_spec(image_folder(tmp_path / "t")))
    fails_cleanly(run(config), PROGRAM, str(info), "feature_dim", roots=[pool])
    assert not list((tmp_path / "w").glob("tasks/*/result.json"))


def test_a_module_that_writes_files(hub_root, tmp_path):
    pool, _ = _pool_copy(hub_root, tmp_path)
    leaked = tmp_path / "leaked.txt"
    evil = pool / "tests/experts/bit/tiny/tiny_upstream/evil/1"
    hub_fixtures.save_module(
        evil, hub_fixtures.WritesAFile(str(leaked)), hub_fixtures.expert_info("evil")
    )
    config = config_for(pool, tmp_path / "w", folder_spec(image_folder(tmp_path / "t")))
    fails_cleanly(run(config), PROGRAM, "op WriteFile", str(evil), roots=[pool])
    assert not leaked.exists()


def test_a_module_with_a_truncated_variables_file(hub_root, tmp_path):
    pool, _ = _pool_copy(hub_root, tmp_path)
    [data] = (pool / EXPERT / "variables").glob("variables.data-*")
    data.write_bytes(data.read_bytes()[:20])
    config = config_for(pool, tmp_path / "w", folder_spec(image_folder(tmp_path / "t")))
    fails_cleanly(run(config), PROGRAM, f"module {pool / EXPERT}: cannot load it", roots=[pool])


@pytest.mark.parametrize("value", ["0", "false"])
def test_a_module_check_switch_that_is_not_explicit(hub_root, tmp_path, monkeypatch, value):
    monkeypatch.setenv("EXPERTS_ALLOW_ANY_OPS", value)
    config = config_for(hub_root, tmp_path / "w", folder_spec(image_folder(tmp_path / "t")))
    fails_cleanly(run(config), PROGRAM, f"EXPERTS_ALLOW_ANY_OPS={value!r}", roots=[hub_root])


def test_a_hub_url_that_climbs_out_of_the_mirror(hub_root, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPERTS_HUB_ROOT", str(hub_root))
    url = "https://tfhub.dev/tests/experts/../../../etc/1"
    config = config_for(url, tmp_path / "w", "mini_mnist")
    fails_cleanly(run(config), PROGRAM, url, "'..'")


def test_a_handle_that_is_not_tfhub(tmp_path):
    url = "https://example.invalid/m/1"
    fails_cleanly(run(config_for(url, tmp_path / "w", "mini_mnist")), PROGRAM, url)


def test_a_task_with_more_classes_than_the_heads(hub_root, tmp_path):
    folder = image_folder(tmp_path / "task", classes=("a", "b", "c"))
    config = config_for(hub_root, tmp_path / "w", folder_spec(folder))
    config.finetune.max_classes = 2
    fails_cleanly(run(config), PROGRAM, "3 classes", "config.finetune.max_classes=2")


def test_an_unknown_strategy(hub_root, tmp_path):
    folder = image_folder(tmp_path / "task")
    config = config_for(hub_root, tmp_path / "w", folder_spec(folder), strategy="gpu")
    fails_cleanly(run(config), PROGRAM, "config.strategy='gpu'", "mirrored")
    assert not (tmp_path / "w" / "run.json").exists()  # refused before the run began


def test_a_report_of_a_directory_without_results(tmp_path):
    config = config_for("", tmp_path / "empty", "mini_mnist")
    (tmp_path / "empty").mkdir()
    call = lambda: vtab_main.execute(config, report_only=True)  # noqa: E731
    fails_cleanly(call, PROGRAM, str(tmp_path / "empty"), roots=[tmp_path / "empty"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_size", 0),  # a TensorFlow InvalidArgumentError
        ("selection.batch_size", 0),  # "range() arg 3 must not be zero"
        ("selection.knn_k", 0),
        ("selection.knn_fallback_level", 1.0),  # any single win would pass: no test left
        ("finetune.batch_size", 0),
        ("finetune.final_repeats", 0),
        ("finetune.learning_rates", (float("nan"),)),
        ("report.confidence", 1.5),
        ("selection.split", "train"),
    ],
)
def test_a_setting_its_rule_refuses(hub_root, tmp_path, field, value):
    config = config_for(hub_root, tmp_path / "w", folder_spec(image_folder(tmp_path / "t")))
    *owners, last = field.split(".")
    owner = config
    for name in owners:
        owner = owner[name]
    owner[last] = value
    fails_cleanly(run(config), PROGRAM, f"config.{field}={owner[last]!r}")
    assert not (tmp_path / "w").exists()


def test_an_empty_workdir(hub_root, tmp_path, monkeypatch):
    # --workdir= : an empty path would put the run and its report in the working directory.
    monkeypatch.chdir(tmp_path)
    config = config_for(hub_root, "", folder_spec(image_folder(tmp_path / "t")))
    fails_cleanly(run(config), PROGRAM, "config.workdir=''", roots=[tmp_path])


def _binary(*arguments, cwd=REPO):
    # From another working directory the project is found through PYTHONPATH.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", PROGRAM, *arguments],
        cwd=cwd, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    [line] = [line for line in done.stderr.splitlines() if line.startswith(f"{PROGRAM}:")]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    return line


@pytest.mark.parametrize(
    ("argument", "culprit"),
    [
        ("--config.nope=1", "--config.nope=1: the config has no field 'nope'"),
        ("--config=vtab_eval/configs/transfer.py:huge", "unknown preset 'huge'"),
        ("--config.seed=many", "--config.seed"),
        ("--config=nope.py:smoke", f"--config=nope.py:smoke: no config file {REPO}/nope.py"),
        ("--config=", "--config is empty"),
        ("stray", "unexpected argument 'stray'"),
        ("--config.image_size=0", "config.image_size=0: must be an integer >= 1"),
    ],
)
def test_bad_flags_through_the_binary(argument, culprit, tmp_path):
    line = _binary(argument, f"--workdir={tmp_path}/w", "--config.pool=x")
    assert culprit in line
    assert not (tmp_path / "w").exists()


def test_no_config_flag_from_another_directory(tmp_path):
    # The default config file is the project's, wherever the program is run from.
    line = _binary("--workdir=", "--config.pool=x", cwd=tmp_path)
    assert "config.workdir='': must be a non-empty path" in line
    assert list(tmp_path.iterdir()) == []


# The flags that mirrored config fields (and tasks.build's own), given as before.
OLD_FLAGS = [
    *((PROGRAM, vtab_main.RENAMED, old) for old in vtab_main.RENAMED),
    *(("vtab_eval.tasks.build", build.RENAMED, old) for old in build.RENAMED),
]


@pytest.mark.parametrize(("program", "renamed", "old"), OLD_FLAGS)
def test_an_old_flag_names_its_new_spelling(program, renamed, old):
    argv = [program, "--config.seed=1", f"--{old}=x"]
    call = lambda: fanout.flags.refuse_renamed(program, argv, renamed)  # noqa: E731
    fails_cleanly(call, program, f"--{old} is now {renamed[old]}")


def test_an_old_flag_through_the_binary(tmp_path):
    line = _binary("--report_only", f"--workdir={tmp_path}/w")
    assert line == f"{PROGRAM}: error: --report_only is now --config.report_only=true"
    assert not (tmp_path / "w").exists()


# The multi-seed headline (vtab_eval.bench.seeds).
def _headline(root, **fields):
    from vtab_eval.bench import seeds
    from vtab_eval.configs import bench_seeds

    config = bench_seeds.get_config("smoke")
    config.workdir = str(root)
    config.update(fields)
    return lambda: seeds.execute(config)


def _seed_results(root, seed, text):
    report = root / f"seed-{seed}" / "transfer" / "report"
    report.mkdir(parents=True)
    (report / "results.json").write_text(text)


def test_seeds_a_bench_directory_that_does_not_exist(tmp_path):
    fails_cleanly(_headline(tmp_path / "nowhere"), "vtab_eval.bench.seeds", "nowhere")


def test_seeds_a_bench_without_results(tmp_path):
    (tmp_path / "seed-0").mkdir()
    fails_cleanly(_headline(tmp_path), "vtab_eval.bench.seeds", "no seed has results yet")


def test_seeds_a_corrupt_results_file(tmp_path):
    _seed_results(tmp_path, 0, "{not json")
    fails_cleanly(_headline(tmp_path), "vtab_eval.bench.seeds", "seed-0", "results.json")


def test_seeds_a_method_no_seed_has(tmp_path):
    entry = {"task": "t", "group": "natural", "methods": {"baseline": {"test_accuracies": [0.5]}}}
    _seed_results(tmp_path, 0, json.dumps({"tasks": [entry]}))
    fails_cleanly(_headline(tmp_path, methods="knn"), "vtab_eval.bench.seeds", "knn")
    assert not (tmp_path / "headline.json").exists()

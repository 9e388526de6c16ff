"""Bad input to the upstream binaries (experts.train, experts.pipeline (gone),
experts.data.build_upstream, hub_export.export, hub_export.catalog,
hub_export.bench.feature_extraction), case by case: each ends in one line naming the
culprit, a non-zero exit, and no file written or lost (tests/bad_input.py)."""

import json
import os
import types
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

import fanout
import fanout.flags
from experts import train, work_tree
from experts.configs import baseline, full
from experts.configs import upstream as upstream_config
from experts.data import build_upstream
from experts.data.builders import image_folder_upstream
from experts.data.embedded import probes
from experts.data.hierarchy import HierarchyError
from fanout import cli
from hub_export import catalog, export
from hub_export import config as export_config
from tests.bad_input import fails_cleanly, run_program, user_files
from tests.data.conftest import make_folder, prepare_folder_builder

REPO = Path(__file__).resolve().parents[2]
DATA = "image_folder_upstream/test"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    root = tmp_path_factory.mktemp("upstream")
    manual = make_folder(str(root / "manual"))
    prepare_folder_builder(manual, str(root / "tfds"))
    return str(root / "tfds")


def smoke(module, data_dir, workdir, **overrides):
    config = module.get_config("smoke")
    config.data.name, config.data_dir = DATA, data_dir
    config.data.experts = ("circle", "red")
    config.workdir, config.eval_batch = str(workdir), 16
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def exported(upstream, tmp_path_factory):
    """A trained smoke B and its baseline module."""
    workdir, hub = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("hub")
    train.execute(smoke(baseline, upstream, workdir))
    config = export_config.get_config()
    config.update(workdir=str(workdir), hub_root=str(hub), kinds="baseline")
    export.execute(config)
    return workdir, hub, config


def test_train_on_an_upstream_that_is_not_prepared(tmp_path):
    config = smoke(baseline, str(tmp_path / "tfds"), tmp_path / "runs")
    config.data.name = "image_folder_upstream"
    message = fails_cleanly(
        lambda: train.execute(config), "experts.train", "image_folder_upstream", "not prepared"
    )
    assert "build_upstream --config.image_folder=" in message
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("expert", ["dog", "../../evil", "/abs"])
def test_train_an_expert_that_is_not_a_node(upstream, exported, expert):
    config = smoke(full, upstream, exported[0], expert=expert)
    fails_cleanly(lambda: train.execute(config), "experts.train", repr(expert), roots=[exported[0]])


def test_train_a_full_expert_before_b(upstream, tmp_path):
    config = smoke(full, upstream, tmp_path / "runs", expert="red")
    fails_cleanly(lambda: train.execute(config), "experts.train", "train that job first")


def test_retrain_b_with_another_model_keeps_it(upstream, exported):
    config = smoke(baseline, upstream, exported[0])
    config.model.size = "r26x0.25"
    fails_cleanly(lambda: train.execute(config), "experts.train", "model.size", roots=[exported[0]])


def test_export_a_work_tree_that_does_not_exist(exported, tmp_path):
    config = exported[2].copy_and_resolve_references()
    config.workdir = str(tmp_path / "none")
    fails_cleanly(lambda: export.execute(config), "hub_export", str(tmp_path / "none"))


def test_export_an_unknown_kind(exported):
    config = exported[2].copy_and_resolve_references()
    config.kinds = "baseline,nope"
    fails_cleanly(lambda: export.execute(config), "hub_export", "'nope'", roots=[exported[1]])


def test_export_a_kind_whose_job_has_not_run(exported):
    config = exported[2].copy_and_resolve_references()
    config.kinds = "epn"
    fails_cleanly(lambda: export.execute(config), "hub_export", "epn", roots=[exported[1]])


def test_export_over_a_module_of_an_older_b(exported):
    workdir, hub, config = exported
    metrics = workdir / "baseline" / "final" / "metrics.json"
    stamp = metrics.stat()
    os.utime(metrics, (stamp.st_atime, stamp.st_mtime + 3600))  # B trained again
    try:
        fails_cleanly(
            lambda: export.execute(config), "hub_export", "baseline/1", "trained again", roots=[hub]
        )
    finally:
        os.utime(metrics, (stamp.st_atime, stamp.st_mtime))


def test_export_with_overwrite_and_skip_existing(exported):
    config = exported[2].copy_and_resolve_references()
    config.overwrite = config.skip_existing = True
    fails_cleanly(lambda: export.execute(config), "hub_export", "exclude", roots=[exported[1]])


def test_catalog_of_a_root_that_does_not_exist(tmp_path):
    call = lambda: catalog.execute(str(tmp_path / "none"))  # noqa: E731
    fails_cleanly(call, "hub_export.catalog", str(tmp_path / "none"))


def test_catalog_with_a_corrupt_expert_info(exported, tmp_path):
    import shutil

    hub = tmp_path / "hub"
    shutil.copytree(exported[1], hub)
    [info] = hub.rglob("expert_info.json")
    info.write_text("{")
    call = lambda: catalog.execute(str(hub))  # noqa: E731
    fails_cleanly(call, "hub_export.catalog", str(info), "invalid JSON", roots=[hub])


def _binary(args, tmp_path, cwd=REPO, program=None):
    status, stderr = run_program(args[0], args[1:], cwd)
    assert status != 0
    program = program or args[0]
    lines = [line for line in stderr.splitlines() if line.startswith(f"{program}: error")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    return lines[0]


def test_build_an_upstream_folder_without_its_hierarchy(tmp_path):
    manual = make_folder(str(tmp_path / "manual"), labels=("triangle",))
    os.remove(os.path.join(manual, "hierarchy.txt"))
    line = _binary(
        [
            "experts.data.build_upstream",
            f"--config.image_folder={manual}",
            f"--config.data_dir={tmp_path}/t",
        ],
        tmp_path,
    )
    assert os.path.join(manual, "hierarchy.txt") in line
    assert not list((tmp_path / "t").rglob("*.tfrecord*"))


def test_build_an_upstream_folder_with_a_class_not_in_the_hierarchy(tmp_path):
    manual = make_folder(str(tmp_path / "manual"), labels=("triangle",))
    os.rename(os.path.join(manual, "images", "triangle"), os.path.join(manual, "images", "hexagon"))
    line = _binary(
        [
            "experts.data.build_upstream",
            f"--config.image_folder={manual}",
            f"--config.data_dir={tmp_path}/t",
        ],
        tmp_path,
    )
    assert "'hexagon'" in line
    assert not list((tmp_path / "t").rglob("*.tfrecord*"))


def _build_folder(manual, tmp_path, *flags):
    line = _binary(
        ["experts.data.build_upstream", f"--config.image_folder={manual}",
         f"--config.data_dir={tmp_path}/t", *flags],
        tmp_path,
    )  # fmt: skip
    assert not list((tmp_path / "t").rglob("*.tfrecord*"))
    return line


def test_build_an_upstream_folder_with_a_negative_max_size(tmp_path):
    manual = make_folder(str(tmp_path / "manual"), labels=("triangle",))
    line = _build_folder(manual, tmp_path, "--config.max_size=-5")
    assert "config.max_size=-5: must be an integer >= 0" in line


def _scan_folder(manual):
    """What build_upstream does first with a folder, as it reports a user's error."""
    with cli.user_errors("experts.data.build_upstream", (HierarchyError,)):
        image_folder_upstream.scan_folder(manual, validation_percent=2)


def test_build_an_upstream_folder_with_a_latin1_hierarchy(tmp_path):
    manual = make_folder(str(tmp_path / "manual"), labels=("triangle",))
    path = os.path.join(manual, "hierarchy.txt")
    with open(path, "rb") as f:
        text = f.read()
    with open(path, "wb") as f:
        f.write(text + b"# caf\xe9 shapes\n")  # Latin-1, not UTF-8
    line = len(text.splitlines()) + 1
    culprit = f"{path}:{line}: byte {len(text) + len('# caf')} (0xe9) is not UTF-8"
    fails_cleanly(lambda: _scan_folder(manual), "experts.data.build_upstream", culprit)


def test_build_an_upstream_folder_too_small_for_a_validation_split(tmp_path):
    manual = make_folder(str(tmp_path / "manual"), labels=("triangle",))
    names = os.listdir(os.path.join(manual, "images", "triangle"))
    assert not any(image_folder_upstream._in_validation(f"triangle/{n}", 2) for n in names)
    builder = image_folder_upstream.ImageFolderUpstream(data_dir=str(tmp_path / "t"))

    def build():
        with cli.user_errors("experts.data.build_upstream", (HierarchyError,)):
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=manual)
            )

    fails_cleanly(
        build,
        "experts.data.build_upstream",
        os.path.join(manual, "images"),
        "none of its 8 images falls in the validation split",
        "about 50",
    )
    assert not list((tmp_path / "t").rglob("*.tfrecord*"))


# What build_upstream finds when it writes the probes (experts/data/embedded/probes.py) of an
# upstream whose plan holds no class out: every node is skipped, the folder still written.
NO_PROBE_CLASSES = types.SimpleNamespace(full_hierarchy=None, probe_items=[], probe_labels=[])


def _write_probes(out_dir, max_images=10):
    with cli.user_errors("experts.data.build_upstream"):
        return probes.ensure_probes(
            lambda: NO_PROBE_CLASSES, None, ["glyph"], 32, str(out_dir), upstream="u",
            max_images=max_images,
        )  # fmt: skip


def test_build_upstream_with_probes_dir_on_a_users_folder(tmp_path):
    mine = user_files(tmp_path / "userdir")
    call = lambda: _write_probes(mine)  # noqa: E731
    fails_cleanly(call, "experts.data.build_upstream", str(mine), "did not write", roots=[mine])
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "photos"]


def test_probes_replace_an_empty_folder_and_their_own(tmp_path):
    (tmp_path / "probes").mkdir()
    assert _write_probes(tmp_path / "probes")["skipped"] == {
        "glyph": "0 held-out class(es) below it"
    }
    assert _write_probes(tmp_path / "probes", max_images=20)["max_images"] == 20
    assert probes.read_manifest(str(tmp_path / "probes"))["max_images"] == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probes"]  # no temporary left


def test_train_with_a_config_field_that_does_not_exist(tmp_path):
    line = _binary(
        ["experts.train", "--config=experts/configs/baseline.py:smoke", "--config.train.nope=1",
         f"--workdir={tmp_path}/runs"],
        tmp_path,
    )  # fmt: skip
    assert "--config.train.nope=1: the config has no field 'nope'" in line
    assert not (tmp_path / "runs").exists()


def test_benchmark_of_a_module_that_writes_files(tmp_path):
    """hub_export.bench.feature_extraction loads its modules through the module check too."""
    from tests.vtab_eval import hostile_modules

    hostile = hostile_modules.build_one(tmp_path, "PrintV2", arch="r14x0.125")
    program = "hub_export.bench.feature_extraction"
    args = [program, f"--module={hostile.path}", "--image_size=8", "--batch=2"]
    line = _binary([*args, "--batches=1", "--rounds=1"], tmp_path)
    assert f"module {hostile.path}: op " in line and "PrintV2" in line
    assert not hostile.wrote()


def test_the_exported_module_is_there(exported):
    # The fixture itself: the cases above refuse to change a real export.
    [info] = Path(exported[1]).rglob("expert_info.json")
    assert json.loads(info.read_text())["kind"] == "baseline"


def _set(config, field: str, value):
    """Sets ``field``; returns the value as stored (a float field's integer is a float)."""
    *owners, last = field.split(".")
    for owner in owners:
        config = config[owner]
    config[last] = value
    return config[last]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("train.total_steps", -3),  # trained a "finished" job of no steps
        ("train.base_lr", float("nan")),  # trained a finished job of NaN weights
        ("model.image_size", 0),  # a TensorFlow InvalidArgumentError
        ("train.global_batch", 0),
        ("train.log_every", 0),
        ("eval_batch", 0),
        ("data.augment.crop_area", (0.0, 1.0)),
    ],
)
def test_train_with_a_setting_its_rule_refuses(upstream, tmp_path, field, value):
    config = smoke(baseline, upstream, tmp_path / "runs")
    stored = _set(config, field, value)
    call = lambda: train.execute(config)  # noqa: E731
    fails_cleanly(call, "experts.train", f"config.{field}={stored!r}")
    assert not (tmp_path / "runs").exists()


def test_training_that_diverges_is_not_marked_finished(upstream, tmp_path):
    config = smoke(baseline, upstream, tmp_path / "runs")
    # Finite, but the second step's update overflows float32 in every weight it reaches.
    config.train.base_lr = 1e30
    call = lambda: train.execute(config)  # noqa: E731
    fails_cleanly(call, "experts.train", "baseline: training diverged", "base_lr")
    assert not work_tree.WorkTree(tmp_path / "runs").baseline.finished()


@pytest.mark.parametrize(
    ("field", "value"), [("version", 0), ("publisher", "a/b"), ("hub_root", "")]
)
def test_export_with_a_setting_its_rule_refuses(exported, field, value):
    config = exported[2].copy_and_resolve_references()
    config[field] = value
    call = lambda: export.execute(config)  # noqa: E731
    fails_cleanly(call, "hub_export", f"config.{field}={value!r}", roots=[exported[1]])


def test_train_with_a_stray_argument(tmp_path):
    line = _binary(
        ["experts.train", "--config=experts/configs/baseline.py:smoke", "stray",
         f"--workdir={tmp_path}/runs"],
        tmp_path,
    )  # fmt: skip
    assert "unexpected argument 'stray'" in line
    assert not (tmp_path / "runs").exists()


def test_train_with_a_config_file_that_does_not_exist(tmp_path):
    missing = tmp_path / "nope.py"
    line = _binary(["experts.train", f"--config={missing}:smoke"], tmp_path)
    assert f"--config={missing}:smoke: no config file {missing}" in line


def test_export_without_config_from_another_directory(tmp_path):
    # The default config file is the project's, wherever the program is run from.
    args = ["hub_export.export", f"--workdir={tmp_path}/none"]
    line = _binary(args, tmp_path, cwd=tmp_path, program="hub_export")
    assert f"work tree {tmp_path}/none does not exist" in line


@pytest.mark.parametrize(
    ("argument", "culprit"),
    [
        ("--config.baseline_workers=0", "config.baseline_workers=0: must be an integer >= 1"),
        ("--config.job=every", "config.job='every': must be one of baseline, full, adapter"),
        ("--job_gpus=-1", "--job_gpus=-1: -1.0 is not a non-negative number"),
        ("--job_gpus=nan", "--job_gpus=nan: must be a finite number >= 0"),
        ("--jobs=baseline", "--jobs is now --config.job (one job, or all)"),
        ("--data_dir=x", "--data_dir is now --config.data_dir"),
        ("stray", "unexpected argument 'stray'"),
    ],
)
def test_the_whole_upstream_with_bad_flags(argument, culprit, tmp_path):
    line = _binary(
        ["experts.train", "--config=experts/configs/upstream.py:smoke", argument,
         f"--workdir={tmp_path}/runs", f"--config.data_dir={tmp_path}/t"],
        tmp_path,
    )  # fmt: skip
    assert culprit in line
    assert not (tmp_path / "runs").exists()


def test_the_pipeline_binary_names_its_successor(tmp_path):
    line = _binary(["experts.pipeline", "--preset=cpu", f"--workdir={tmp_path}/runs"], tmp_path)
    assert "experts.pipeline is now python -m experts.train" in line
    assert "--config=experts/configs/upstream.py:<preset>" in line
    assert not (tmp_path / "runs").exists()


# Each binary's old spellings (flags that became config fields, the moved data_dir).
OLD_FLAGS = [
    (program, renamed, old)
    for program, renamed in (
        ("experts.train", train.RENAMED),
        ("hub_export", export.RENAMED),
        ("hub_export.catalog", catalog.RENAMED),
        ("experts.data.build_upstream", build_upstream.RENAMED),
    )
    for old in renamed
]


@pytest.mark.parametrize(("program", "renamed", "old"), OLD_FLAGS)
def test_an_old_flag_names_its_new_spelling(program, renamed, old, tmp_path):
    argv = [program, f"--workdir={tmp_path}/runs", f"--{old}=x"]
    call = lambda: fanout.flags.refuse_renamed(program, argv, renamed)  # noqa: E731
    fails_cleanly(call, program, f"--{old} is now {renamed[old]}")


def test_the_whole_upstream_on_ray_train_workers_needs_ray(tmp_path):
    config = upstream_config.get_config("smoke")
    config.baseline_workers, config.workdir = 2, str(tmp_path / "runs")
    call = lambda: train.execute(config, fanout.LocalExecutor())  # noqa: E731
    fails_cleanly(call, "experts.train", "--config.baseline_workers > 1 needs --executor=ray")
    assert not (tmp_path / "runs").exists()

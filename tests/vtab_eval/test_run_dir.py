"""The transfer run directory's guard: one run at a time, and run.json written only
once a run's inputs have been checked."""

import subprocess
import sys
from pathlib import Path

import pytest

from vtab_eval import files, run_dir, runner
from vtab_eval.configs import transfer

REPO = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from vtab_eval import run_dir
with run_dir.RunDir(sys.argv[1]).lock():
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_run_at_once_is_refused_naming_the_holder(hub_root, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        config = transfer.get_config("smoke")
        config.update(pool=str(hub_root), suite="mini_mnist", workdir=str(tmp_path))
        with pytest.raises(RuntimeError, match=rf"in use by pid {holder.pid} on "):
            runner.run(config, log=lambda message: None)
        assert not (tmp_path / run_dir.RUN_FILE).exists()
    finally:
        holder.kill()
        holder.wait()
    with run_dir.RunDir(tmp_path).lock():  # a killed holder leaves nothing behind
        assert (tmp_path / ".lock.owner").read_text().startswith("pid ")
    assert not (tmp_path / ".lock.owner").exists()


def test_a_failed_first_run_does_not_tie_the_directory_to_its_pool(hub_root, tmp_path):
    config = transfer.get_config("smoke")
    missing = tmp_path / "no_such_folder"
    config.update(
        pool=str(hub_root), suite=f'image_folder(path="{missing}")', workdir=str(tmp_path / "w")
    )
    with pytest.raises(Exception, match="no_such_folder"):
        runner.run(config, log=lambda message: None)
    assert not (tmp_path / "w" / run_dir.RUN_FILE).exists()


def test_the_record_keeps_result_fields_and_drops_speed_ones():
    config = transfer.get_config("smoke")
    record = run_dir.run_record(config, ["a", "b"])
    values = run_dir.flatten(config.to_dict())
    # A later field is left out at the value older directories ran with only.
    left_out = {f for f, older in run_dir.LATER_FIELDS.items() if values[f] == older}
    assert left_out != set(run_dir.LATER_FIELDS)  # the fallback level is recorded
    assert set(run_dir.flatten(record["config"])) == run_dir.RESULT_FIELDS - left_out
    assert record["pool"] == ["a", "b"]
    assert "tuner_cache" not in record["config"]["finetune"]
    assert isinstance(record["config"]["finetune"]["learning_rates"], list)


@pytest.mark.parametrize("preset", transfer.PRESETS)
def test_every_config_field_is_classified(preset):
    """A field neither result-changing nor speed-only would be accepted changed on a
    rerun without anyone deciding it may: every leaf must be in exactly one set."""
    leaves = set(run_dir.flatten(transfer.get_config(preset).to_dict()))
    assert not run_dir.RESULT_FIELDS & run_dir.SPEED_ONLY_FIELDS
    unclassified = leaves - run_dir.RESULT_FIELDS - run_dir.SPEED_ONLY_FIELDS
    assert not unclassified, f"classify in vtab_eval/run_dir.py: {sorted(unclassified)}"
    # and no classified field is gone from the config (a renamed field would be unchecked)
    assert run_dir.RESULT_FIELDS | run_dir.SPEED_ONLY_FIELDS == leaves


def _recorded(tmp_path, config):
    where = run_dir.RunDir(tmp_path)
    where.record_run(run_dir.run_record(config, ["a"]))
    return where


@pytest.mark.parametrize(
    ("field", "value"),
    [("oracle.screen_repeats", 2), ("selection.knn_k", 3), ("finetune.precision", "bfloat16")],
)
def test_a_result_field_change_is_refused_naming_the_field(tmp_path, field, value):
    config = transfer.get_config("smoke")
    where = _recorded(tmp_path, config)
    changed = config.copy_and_resolve_references()
    section, leaf = field.split(".")
    changed[section][leaf] = value
    with pytest.raises(ValueError, match=rf"run.json: .* different config.{field} \(") as error:
        where.check_run(run_dir.run_record(changed, ["a"]))
    assert "\n" not in str(error.value)


def test_a_speed_only_change_is_accepted_and_a_result_change_refused(tmp_path):
    config = transfer.get_config("smoke")
    where = _recorded(tmp_path, config)
    faster = config.copy_and_resolve_references()
    faster.selection.batch_size, faster.finetune.eval_batch = 7, 9
    faster.strategy = "mirrored"  # the same results up to float rounding
    faster.report.bootstrap_samples, faster.suite = 10, "mini_mnist"
    faster.report.bench_headline = ""  # what the report says of other seeds
    where.check_run(run_dir.run_record(faster, ["a"]))
    changed = config.copy_and_resolve_references()
    changed.selection.knn_k = 3
    with pytest.raises(ValueError, match=r"run.json: .* different config.selection"):
        where.check_run(run_dir.run_record(changed, ["a"]))
    with pytest.raises(ValueError, match="another pool"):
        where.check_run(run_dir.run_record(config, ["a", "b"]))


def test_a_record_from_before_the_oracle_field_matches_until_oracle_results_exist(tmp_path):
    config = transfer.get_config("smoke")
    where = _recorded(tmp_path, config)
    old = files.read_json(where.run_file)
    del old["config"]["oracle"]
    files.write_json(where.run_file, old)
    where.check_run(run_dir.run_record(config, ["a"]))  # no oracle ran: any value matches
    files.write_json(where.task("t").selection_path("oracle"), {})
    with pytest.raises(ValueError, match="recorded without config.oracle.screen_repeats"):
        where.check_run(run_dir.run_record(config, ["a"]))


def test_config_paths_expand_the_home_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    config = transfer.get_config("smoke")
    config.update(workdir="~/w", data_dir="~/d", probes="")
    config.report.dir = "~/r"
    expanded = run_dir.expand_user_paths(config)
    assert (expanded.workdir, expanded.data_dir) == (f"{tmp_path}/w", f"{tmp_path}/d")
    assert expanded.report.dir == f"{tmp_path}/r" and expanded.probes == ""
    assert config.workdir == "~/w"  # the caller's config is left as it was

"""A transfer run's jobs build what the runner builds, on any executor: a worker's
feature store writes the caches the runner reads, and in this process the jobs use the
runner's own fine-tuning and store."""

from pathlib import Path

import pytest

import fanout
from vtab_eval import runner, stages, tasks
from vtab_eval.configs import transfer
from vtab_eval.pool import expert_pool as pool

SPEC = 'mini_dsprites(predicted_attribute="label_x_position",num_classes=4,config="tiny")'


def _config(hub_root, workdir, precision="float32"):
    config = transfer.get_config("smoke")
    config.update(pool=str(hub_root), suite=SPEC, workdir=str(workdir))
    config.selection.precision = precision
    return config


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_workers_feature_store_is_the_runners(hub_root, tmp_path, precision):
    config = _config(hub_root, tmp_path / "run", precision)
    the_pool = pool.open_pool(config.pool)
    local = runner.Runner(config, the_pool, [SPEC], ["knn"], Path(config.workdir)).store
    worker = stages.worker_tuning(
        stages.portable_config(config), str(Path(config.workdir).resolve())
    ).store
    assert worker.precision == local.precision == precision
    task = tasks.get_task(SPEC, data_dir=str(tmp_path / "tfds"))
    for module in the_pool.experts:
        for split in ("train", "test"):
            assert worker.cache_path(module.handle, task, split) == local.cache_path(
                module.handle, task, split
            )


def test_jobs_in_this_process_use_the_runners_tuning(hub_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative work directory, as a user types it
    config = _config(hub_root, "run")
    the_pool = pool.open_pool(config.pool)
    run = runner.Runner(config, the_pool, [SPEC], ["knn"], Path("run"),
                        executor=fanout.LocalExecutor(log=lambda line: None))  # fmt: skip
    config = stages.portable_config(run.config)
    assert stages.worker_tuning(config, str((tmp_path / "run").resolve())) is run.tuning


def test_fine_tuning_jobs_build_each_picked_module_once(hub_root, tmp_path):
    """Jobs are per module, so a module picked on several tasks is made ready (built, or
    its weights loaded into its program's FineTuner) once even with room for one
    FineTuner (in task order, B and the picks would take turns)."""
    other = SPEC.replace("label_x_position", "label_orientation")
    config = _config(hub_root, tmp_path / "run")
    config.update(suite=f"{SPEC};{other}", data_dir=str(tmp_path / "tfds"))
    config.finetune.tuner_cache = 1
    log = []
    run = runner.Runner(config, pool.open_pool(config.pool), [SPEC, other], ["knn", "baseline"],
                        Path(config.workdir), log=log.append)  # fmt: skip
    run.run()
    picks = {run.select(task, name).pick for task in map(_task_of(config), (SPEC, other))
             for name in ("knn", "baseline")}  # fmt: skip
    assert run.tuners.builds + run.tuners.weight_loads == len(picks)
    assert sum(line.startswith("fine-tuning ") for line in log) == len(picks)
    assert any("steps" in line and "%)" in line for line in log)  # the time split


def _task_of(config):
    return lambda spec: tasks.get_task(spec, data_dir=config.data_dir)

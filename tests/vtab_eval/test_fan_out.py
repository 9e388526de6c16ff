"""A transfer run's jobs on another executor build what the runner builds: a worker's
feature store writes the caches the runner reads."""

from pathlib import Path

import pytest

from vtab_eval import fan_out, runner, tasks
from vtab_eval.configs import transfer
from vtab_eval.pool import expert_pool as pool

SPEC = 'mini_dsprites(predicted_attribute="label_x_position",num_classes=4,config="tiny")'


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_workers_feature_store_is_the_runners(hub_root, tmp_path, precision):
    config = transfer.get_config("smoke")
    config.update(pool=str(hub_root), suite=SPEC, workdir=str(tmp_path / "run"))
    config.selection.precision = precision
    the_pool = pool.open_pool(config.pool)
    local = runner.Runner(config, the_pool, [SPEC], ["knn"], Path(config.workdir)).store
    worker = fan_out.worker_tuning(config, config.workdir).store
    assert worker.precision == local.precision == precision
    task = tasks.get_task(SPEC, data_dir=str(tmp_path / "tfds"))
    for module in the_pool.experts:
        for split in ("train", "test"):
            assert worker.cache_path(module.handle, task, split) == local.cache_path(
                module.handle, task, split
            )

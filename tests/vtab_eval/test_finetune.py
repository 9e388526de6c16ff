"""Fine-tuning: zero head, whole network trained, resets, and the VTAB protocol."""

import math

import numpy as np
import pytest

from vtab_eval import finetune, tasks
from vtab_eval.hyperparams import HParams

RED = "tests/experts/bit/tiny/tiny_upstream/red/1"


@pytest.fixture(scope="module")
def tuner(hub_root):
    return finetune.FineTuner(str(hub_root / RED), num_classes=4, image_size=8, eval_batch=16)


def _splits(task):
    return {s: task.splits[s] for s in tasks.SPLITS}


def test_batches_cover_each_epoch_once():
    idx = finetune.batch_indices(10, 4, 5, seed=0)
    assert idx.shape == (5, 4)
    flat = idx.ravel()
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    np.testing.assert_array_equal(idx, finetune.batch_indices(10, 4, 5, seed=0))


def test_head_starts_at_zero_and_the_whole_network_trains(tuner, red_task):
    tuner.reset()
    head = tuner.model.get_layer("head")
    assert not np.any(head.kernel.numpy()) and not np.any(head.bias.numpy())
    backbone = [v for v in tuner.model.trainable_variables if "head" not in v.name]
    assert backbone, "the hub module's variables must be trainable"
    before = [v.numpy().copy() for v in backbone]
    setting = HParams(0.3, 80, 8, warmup_steps=8, decay_boundaries=(48,))
    result = tuner.run(red_task.splits["train800"], red_task.splits["test"], setting, seed=1)
    assert result["first_loss"] == pytest.approx(math.log(4), rel=1e-5)  # zero head: uniform
    assert result["final_loss"] < result["first_loss"]
    assert all(not np.allclose(b, v.numpy()) for b, v in zip(before, backbone, strict=True))
    assert result["accuracy"] >= 0.9  # colour classes are easy for colour features


def test_runs_restart_from_the_initial_weights(tuner, red_task):
    setting = HParams(0.3, 6, 8, warmup_steps=0, decay_boundaries=())
    first = tuner.run(red_task.splits["train800"], red_task.splits["val200"], setting, seed=5)
    second = tuner.run(red_task.splits["train800"], red_task.splits["val200"], setting, seed=5)
    assert first["final_loss"] == pytest.approx(second["final_loss"], rel=1e-6)
    assert first["accuracy"] == second["accuracy"]


def test_protocol_selects_on_val_and_retrains_on_train_plus_val(tuner, red_task):
    good = HParams(0.3, 80, 8, warmup_steps=8, decay_boundaries=(48,))
    useless = HParams(1e-9, 1, 8, warmup_steps=0, decay_boundaries=())
    sizes = []

    def sweep(size):
        sizes.append(size)
        return [useless, good]

    result = finetune.run_protocol(
        tuner, _splits(red_task), sweep, sweep_repeats=2, final_repeats=3, seed=0
    )
    assert len(result["trials"]) == 2 and len(result["test_accuracies"]) == 6
    assert sizes == [40, 50, 40, 50]  # sweep on train800, retrain at train800val200's size
    for trial in result["trials"]:
        assert [r["val_accuracy"] for r in trial["sweep"]][0] < trial["sweep"][1]["val_accuracy"]
        assert trial["chosen_index"] == 1 and trial["chosen"] == good.to_json()
    assert result["median_test_accuracy"] == np.median(result["test_accuracies"]) >= 0.9
    single = finetune.run_protocol(
        tuner, _splits(red_task), lambda n: [good], sweep_repeats=1, final_repeats=1, seed=0
    )
    assert single["trials"][0]["sweep"] == []  # one candidate: nothing to select


def test_smoke_preset_fine_tunes_a_real_task_end_to_end(hub_root, tmp_path):
    from vtab_eval import runner
    from vtab_eval.configs import transfer
    from vtab_eval.features import FeatureStore

    config = transfer.get_config("smoke")
    task = tasks.get_task(
        'mini_dsprites(predicted_attribute="label_x_position",num_classes=16,config="tiny")',
        data_dir=str(tmp_path / "tfds"),
    )
    store = FeatureStore(tmp_path / "features", config.image_size)
    splits = {s: store.images(task, s) for s in tasks.SPLITS}
    result = finetune.finetune(
        str(hub_root / RED.replace("red", "baseline")), task, splits, runner.sweep_fn(config),
        image_size=config.image_size, sweep_repeats=1, final_repeats=1, seed=0,
    )  # fmt: skip
    assert len(result["test_accuracies"]) == 1 and 0.0 <= result["median_test_accuracy"] <= 1.0
    assert result["trials"][0]["finals"][0]["first_loss"] == pytest.approx(math.log(16), rel=1e-5)

"""The paper presets follow the paper and BiT; the embedded upstream keeps its own
augmentation; the strategy and the expert choice are configs."""

import pytest

from experts.configs import adapter, baseline, epn, full
from experts.configs.presets import PRESETS
from experts.training import distribute, schedules
from vtab_eval.configs import transfer


def _peak(config):
    return schedules.scaled_learning_rate(config.train.base_lr, config.train.global_batch)


def test_b_follows_bit_m_upstream():
    config = baseline.get_config("paper")
    train = config.train
    assert _peak(config) == pytest.approx(0.48)  # 0.03 per 256 at batch 4096
    assert train.weight_decay == 1e-4 and train.decay == "step"
    assert schedules.warmup_steps_for(train.total_steps, train.warmup_fraction) == 5000
    steps_per_epoch = train.total_steps / 90
    lr = lambda epoch: schedules.learning_rate_at(  # noqa: E731
        epoch * steps_per_epoch, peak=0.48, total_steps=train.total_steps, warmup_steps=5000,
        decay="step", step_boundaries=tuple(train.step_boundaries),
    )  # fmt: skip
    assert [lr(e) for e in (29.9, 30.1, 60.1, 80.1)] == pytest.approx(
        [0.48, 0.048, 0.0048, 0.00048]
    )
    assert lr(79.9) == pytest.approx(0.0048)
    assert dict(config.data.augment) == {"crop_area": (0.08, 1.0), "flip": True}


def test_full_experts_fine_tune_b_briefly_at_a_low_rate():
    expert, b = full.get_config("paper"), baseline.get_config("paper")
    assert _peak(expert) == pytest.approx(_peak(b) / 20)
    assert expert.train.total_steps == 20_000 and expert.train.decay == "step"
    assert schedules.warmup_steps_for(20_000, expert.train.warmup_fraction) == 500


@pytest.mark.parametrize("module", [baseline, full, adapter, epn])
def test_the_paper_rule_chooses_the_experts_and_the_devices(module):
    config = module.get_config("paper")
    assert dict(config.data.choice) == {
        "rule": "top", "num_experts": 50, "min_images": 0, "max_overlap": 1.0,
        "exclude_roots": False,
    }  # fmt: skip
    assert config.strategy == "auto"
    cpu = module.get_config("cpu")
    assert cpu.data.choice.rule == "recorded" and cpu.strategy == "default"
    assert dict(cpu.data.augment) == {"crop_area": (0.6, 1.0), "flip": False}  # glyphs


@pytest.mark.parametrize("preset", PRESETS)
def test_fine_tuning_reads_the_strategy_fields_training_has(preset):
    down, up = transfer.get_config(preset), baseline.get_config(preset)
    assert (down.strategy, down.tpu_address) == (up.strategy, up.tpu_address)


def test_auto_strategy_looks_at_this_machine_only(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    assert distribute.auto_strategy() == ("default", "")  # no GPU or TPU here
    monkeypatch.setenv("TPU_NAME", "my-tpu")
    assert distribute.auto_strategy() == ("tpu", "my-tpu")
    assert distribute.auto_strategy("grpc://10.0.0.2:8470")[1] == "grpc://10.0.0.2:8470"

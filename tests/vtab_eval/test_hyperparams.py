"""Hyperparameter rules: pure functions of the dataset size."""

import pytest

from vtab_eval.configs import transfer
from vtab_eval.finetune import hyperparams as hp


def test_vtab_schedule_scales_task_adaptations_reference_run():
    # scripts/run_all_tasks.sh: 1000 steps, warmup 80, decays at 300, 600, 900.
    assert hp.vtab_schedule(1000) == (80, (300, 600, 900))
    assert hp.vtab_schedule(2500) == (200, (750, 1500, 2250))
    assert hp.vtab_schedule(1) == (0, (0, 1, 1))


@pytest.mark.parametrize(
    "size, expected",
    [
        (1000, (100, (200, 300, 400), 500)),
        (19_999, (100, (200, 300, 400), 500)),
        (20_000, (500, (3000, 6000, 9000), 10_000)),
        (499_999, (500, (3000, 6000, 9000), 10_000)),
        (500_000, (500, (6000, 12_000, 18_000), 20_000)),
    ],
)
def test_bit_hyperrule_schedule_by_dataset_size(size, expected):
    assert hp.bit_hyperrule_schedule(size) == expected


def test_bit_hyperrule_resolution():
    assert hp.bit_hyperrule_resolution(32, 32) == (160, 128)
    assert hp.bit_hyperrule_resolution(95, 96) == (160, 128)
    assert hp.bit_hyperrule_resolution(96, 96) == (512, 480)


def test_epochs_to_steps():
    assert hp.epochs_to_steps(800, 64, 5) == 63
    assert hp.epochs_to_steps(1000, 64, 5) == 79
    assert hp.epochs_to_steps(10, 64, 0.01) == 1
    with pytest.raises(ValueError, match="positive"):
        hp.epochs_to_steps(0, 64, 1)


def test_paper_preset_holds_vtabs_lightweight_sweep():
    ft = transfer.get_config("paper").finetune
    settings = hp.sweep(ft.rule, 800, learning_rates=ft.learning_rates, batch_size=ft.batch_size,
                        steps=ft.steps, epochs=ft.epochs)  # fmt: skip
    assert [(s.learning_rate, s.steps, s.batch_size) for s in settings] == [
        (0.1, 2500, 512), (0.1, 10000, 512), (0.01, 2500, 512), (0.01, 10000, 512)
    ]  # fmt: skip
    # The fixed rule ignores the dataset size: the retrain on 1000 uses the same steps.
    assert hp.sweep(ft.rule, 1000, learning_rates=ft.learning_rates, batch_size=512,
                    steps=ft.steps) == settings  # fmt: skip
    assert (ft.sweep_repeats, ft.final_repeats) == (10, 3)


@pytest.mark.parametrize("preset", transfer.PRESETS)
def test_every_preset_gives_a_valid_sweep(preset):
    ft = transfer.get_config(preset).finetune
    for size in (18, 800, 1000):
        settings = hp.sweep(ft.rule, size, learning_rates=ft.learning_rates,
                            batch_size=ft.batch_size, steps=ft.steps, epochs=ft.epochs)  # fmt: skip
        assert settings and all(s.warmup_steps <= s.steps for s in settings)


def test_epochs_rule_gives_the_retrain_more_steps():
    small = hp.sweep("epochs", 800, learning_rates=[0.01], batch_size=64, epochs=[5])
    large = hp.sweep("epochs", 1000, learning_rates=[0.01], batch_size=64, epochs=[5])
    assert (small[0].steps, large[0].steps) == (63, 79)
    assert small[0].decay_boundaries == (19, 38, 57)


def test_bit_rule_scales_the_base_rate_with_the_batch():
    (setting,) = hp.sweep("bit", 1000, learning_rates=[1.0], batch_size=128)
    assert setting.learning_rate == pytest.approx(0.003 * 128 / 512)
    assert (setting.steps, setting.warmup_steps) == (500, 100)


def test_learning_rate_at_warms_up_then_drops_tenfold():
    setting = hp.HParams(0.1, 100, 8, warmup_steps=10, decay_boundaries=(30, 60, 90))
    rates = [hp.learning_rate_at(s, setting) for s in range(100)]
    assert rates[0] == pytest.approx(0.01) and rates[9] == pytest.approx(0.1)
    assert rates[29] == pytest.approx(0.1) and rates[30] == pytest.approx(0.01)
    assert rates[60] == pytest.approx(0.001) and rates[99] == pytest.approx(0.0001)
    no_warmup = hp.HParams(0.1, 10, 8, warmup_steps=0, decay_boundaries=())
    assert hp.learning_rate_at(0, no_warmup) == 0.1


def test_hparams_validate_and_round_trip():
    setting = hp.HParams(0.1, 100, 8, 10, (30, 60))
    assert hp.HParams.from_json(setting.to_json()) == setting
    with pytest.raises(ValueError, match="warm-up 200 outside"):
        hp.HParams(0.1, 100, 8, 200, ())
    with pytest.raises(ValueError, match="unknown hyperparameter rule"):
        hp.sweep("grid", 10, learning_rates=[0.1], batch_size=8)
    with pytest.raises(ValueError, match="needs epochs"):
        hp.sweep("epochs", 10, learning_rates=[0.1], batch_size=8)

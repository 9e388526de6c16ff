import numpy as np
import pytest

from experts.training import schedules


def test_linear_scaling_rule():
    assert schedules.scaled_learning_rate(0.1, 256) == pytest.approx(0.1)
    assert schedules.scaled_learning_rate(0.1, 4096) == pytest.approx(1.6)  # BiT upstream
    with pytest.raises(ValueError, match="global batch must be positive"):
        schedules.scaled_learning_rate(0.1, 0)


def test_warmup_length():
    assert schedules.warmup_steps_for(1000) == 50
    assert schedules.warmup_steps_for(1_000_000) == 5000  # capped as BiT
    assert schedules.warmup_steps_for(1) == 0


def test_warmup_then_cosine_to_zero():
    lr = lambda s: schedules.learning_rate_at(s, peak=1.0, total_steps=110, warmup_steps=10)  # noqa: E731
    assert lr(0) == pytest.approx(0.1) and lr(9) == pytest.approx(1.0)
    assert lr(10) == pytest.approx(1.0)
    assert lr(60) == pytest.approx(0.5)
    assert lr(110) == pytest.approx(0.0, abs=1e-12)
    assert all(lr(s) >= lr(s + 1) for s in range(10, 110))


def test_step_decay_drops_tenfold_at_fractions():
    kwargs = dict(peak=1.0, total_steps=100, warmup_steps=0, decay="step")
    values = [schedules.learning_rate_at(s, **kwargs) for s in (0, 29, 30, 60, 95)]
    np.testing.assert_allclose(values, [1.0, 1.0, 0.1, 0.01, 0.001])


@pytest.mark.parametrize("decay", ["cosine", "step"])
def test_keras_schedule_equals_plain_function(decay):
    schedule = schedules.WarmupDecay(0.4, 200, 20, decay)
    for step in range(0, 201, 7):
        expected = schedules.learning_rate_at(
            step, peak=0.4, total_steps=200, warmup_steps=20, decay=decay
        )
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_unknown_decay_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown decay 'linear'"):
        schedules.WarmupDecay(0.1, 10, 1, "linear")

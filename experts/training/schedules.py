"""Learning-rate schedules and the hyperparameter rules that pick them.

Pure functions of step and dataset size, so they are tested directly and print the
same values under any strategy. Upstream we follow BiT: SGD with momentum 0.9, a
base rate scaled linearly with the global batch (0.03 per 256 images for fine-tuning
from B, 0.1 per 256 from scratch), linear warm-up, then cosine or step decay.
"""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras


def scaled_learning_rate(base_lr_per_256: float, global_batch: int) -> float:
    """BiT's linear scaling rule: the rate grows with the global batch size."""
    if global_batch <= 0:
        raise ValueError(f"global batch must be positive, got {global_batch}")
    return base_lr_per_256 * global_batch / 256


def warmup_steps_for(total_steps: int, fraction: float = 0.05, cap: int = 5000) -> int:
    """Warm-up length: a fraction of the run, at most ``cap`` steps (BiT warms up for
    5k steps on its 1M-step upstream runs)."""
    return min(cap, max(1, int(round(total_steps * fraction)))) if total_steps > 1 else 0


def learning_rate_at(
    step: float,
    *,
    peak: float,
    total_steps: int,
    warmup_steps: int,
    decay: str = "cosine",
    step_boundaries: tuple[float, ...] = (0.3, 0.6, 0.9),
) -> float:
    """The schedule in plain Python: linear warm-up to ``peak``, then ``cosine`` decay
    to zero or ``step`` decay by 10x at the given fractions of the run."""
    if decay not in ("cosine", "step"):
        raise ValueError(f"unknown decay {decay!r}; use 'cosine' or 'step'")
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if decay == "cosine":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    drops = sum(step >= b * total_steps for b in step_boundaries)
    return peak * 0.1**drops


class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``learning_rate_at`` as a graph-friendly Keras schedule."""

    def __init__(
        self, peak, total_steps, warmup_steps, decay="cosine", step_boundaries=(0.3, 0.6, 0.9)
    ):
        super().__init__()
        learning_rate_at(
            0, peak=peak, total_steps=total_steps, warmup_steps=warmup_steps, decay=decay
        )  # validates the arguments
        self.peak, self.total_steps, self.warmup_steps = peak, total_steps, warmup_steps
        self.decay, self.step_boundaries = decay, tuple(step_boundaries)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.peak * (step + 1) / max(1, self.warmup_steps)
        if self.decay == "cosine":
            progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
            decayed = self.peak * 0.5 * (1 + tf.cos(math.pi * tf.minimum(1.0, progress)))
        else:
            drops = tf.add_n(
                [tf.cast(step >= b * self.total_steps, tf.float32) for b in self.step_boundaries]
                or [tf.constant(0.0)]
            )
            decayed = self.peak * tf.pow(0.1, drops)
        return tf.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "step_boundaries": self.step_boundaries,
        }

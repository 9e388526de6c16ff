"""Fine-tuning hyperparameter rules: pure functions of the dataset size, tested directly.

Three rules, each turning a training-set size into the candidate settings of a sweep:

* ``fixed`` (VTAB-1k, the ``paper`` preset): VTAB's recommended lightweight sweep, the
  one the paper uses (section 6.3): learning rates {0.1, 0.01} x schedules {2500, 10000}
  steps at batch 512, whatever the dataset size.
* ``bit``: BiT's HyperRule (Kolesnikov et al., 2020): 500 steps below 20k examples,
  10k below 500k, 20k above, with its warm-up and decay points; the base rate 0.003 at
  batch 512, scaled linearly with the batch.
* ``epochs`` (the ``cpu`` and ``smoke`` presets): a number of passes over the data, so
  the retrain on train800val200 gets 1000/800 as many steps as the sweep's runs on
  train800, as a schedule "by dataset size" should.

Schedule shape, for ``fixed`` and ``epochs``: task_adaptation's reference run
(scripts/run_all_tasks.sh: 1000 steps, 80 warm-up steps, 10x decays at 300, 600, 900)
scaled to the run length: warm-up over the first 8%, decays at 30%, 60% and 90%.
Optimiser (fixed for every rule, as in task_adaptation and BiT): SGD, momentum 0.9,
no weight decay.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

MOMENTUM = 0.9
# task_adaptation's run_all_tasks.sh: warmup 80 and decay_steps 300,600,900 of 1000.
VTAB_WARMUP_FRACTION = 0.08
VTAB_DECAY_FRACTIONS = (0.3, 0.6, 0.9)
DECAY_FACTOR = 0.1
BIT_BASE_LR = 0.003
BIT_BASE_BATCH = 512
RULES = ("fixed", "bit", "epochs")


@dataclasses.dataclass(frozen=True)
class HParams:
    """One fine-tuning setting. Boundaries are absolute steps where the rate drops 10x."""

    learning_rate: float
    steps: int
    batch_size: int
    warmup_steps: int
    decay_boundaries: tuple[int, ...]

    def __post_init__(self):
        if self.learning_rate <= 0 or self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"invalid hyperparameters {self}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warm-up {self.warmup_steps} outside [0, {self.steps}]")

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["decay_boundaries"] = list(self.decay_boundaries)
        return data

    @classmethod
    def from_json(cls, data: dict) -> HParams:
        return cls(**{**data, "decay_boundaries": tuple(data["decay_boundaries"])})


def vtab_schedule(total_steps: int) -> tuple[int, tuple[int, ...]]:
    """(warm-up steps, decay boundaries) of task_adaptation's schedule for a run length."""
    if total_steps < 1:
        raise ValueError(f"total steps must be >= 1, got {total_steps}")
    warmup = int(round(VTAB_WARMUP_FRACTION * total_steps))
    boundaries = tuple(int(round(f * total_steps)) for f in VTAB_DECAY_FRACTIONS)
    return warmup, boundaries


def bit_hyperrule_schedule(dataset_size: int) -> tuple[int, tuple[int, ...], int]:
    """BiT's HyperRule: (warm-up steps, decay boundaries, total steps) by dataset size."""
    if dataset_size < 1:
        raise ValueError(f"dataset size must be >= 1, got {dataset_size}")
    if dataset_size < 20_000:
        supports = (100, 200, 300, 400, 500)
    elif dataset_size < 500_000:
        supports = (500, 3000, 6000, 9000, 10_000)
    else:
        supports = (500, 6000, 12_000, 18_000, 20_000)
    return supports[0], supports[1:-1], supports[-1]


def bit_hyperrule_resolution(height: int, width: int) -> tuple[int, int]:
    """BiT's HyperRule resolution: (resize to, crop to) by the original image area."""
    return (160, 128) if height * width < 96 * 96 else (512, 480)


def epochs_to_steps(dataset_size: int, batch_size: int, epochs: float) -> int:
    """Steps for `epochs` passes over `dataset_size` examples (at least one step)."""
    if dataset_size < 1 or batch_size < 1 or epochs <= 0:
        raise ValueError(
            f"need positive size, batch and epochs: {dataset_size}, {batch_size}, {epochs}"
        )
    return max(1, math.ceil(epochs * dataset_size / batch_size))


def sweep(
    rule: str,
    dataset_size: int,
    *,
    learning_rates: Sequence[float],
    batch_size: int,
    steps: Sequence[int] = (),
    epochs: Sequence[float] = (),
) -> list[HParams]:
    """The candidate settings of one rule for a training set of `dataset_size`.

    `steps` are the schedules of the ``fixed`` rule, `epochs` those of ``epochs``;
    ``bit`` ignores both and `learning_rates` are multipliers of its scaled base rate.
    """
    if rule not in RULES:
        raise ValueError(f"unknown hyperparameter rule {rule!r}; choose from {RULES}")
    if not learning_rates:
        raise ValueError("the sweep needs at least one learning rate")
    out = []
    if rule == "bit":
        warmup, boundaries, total = bit_hyperrule_schedule(dataset_size)
        base = BIT_BASE_LR * batch_size / BIT_BASE_BATCH
        for multiplier in learning_rates:
            out.append(HParams(base * multiplier, total, batch_size, warmup, boundaries))
        return out
    if rule == "fixed":
        lengths = list(steps)
    else:
        lengths = [epochs_to_steps(dataset_size, batch_size, e) for e in epochs]
    if not lengths:
        raise ValueError(f"rule {rule!r} needs {'steps' if rule == 'fixed' else 'epochs'}")
    for lr in learning_rates:
        for total in lengths:
            warmup, boundaries = vtab_schedule(total)
            out.append(HParams(float(lr), int(total), batch_size, warmup, boundaries))
    return out


def learning_rate_at(step: int, hp: HParams) -> float:
    """The rate at 0-based `step`: linear warm-up reaching the peak at the warm-up's last
    step (so step 0 already moves), then 10x drops at each boundary passed."""
    if step < hp.warmup_steps:
        return hp.learning_rate * (step + 1) / hp.warmup_steps
    drops = sum(step >= b for b in hp.decay_boundaries)
    return hp.learning_rate * DECAY_FACTOR**drops

r"""Adapter experts: B frozen, one adapter set per expert before each block, all trained
in one job on a mix of the experts' slices in equal shares, routed by the upstream
labels (paper, sections 4.1 and 4.3).

    python -m experts.train --config=experts/configs/adapter.py:cpu

Every expert gets global_batch / num_experts examples per step, so all experts see
the same number of examples. Needs B finished in the same ``--workdir``.
"""

from __future__ import annotations

import ml_collections

from experts.configs import upstream

RULES = upstream.RULES  # the base config's fields: this file only sets their values


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    config = upstream.base_config(preset, "adapter")
    config.train.total_steps = {"smoke": 2, "cpu": 600, "paper": 50_000}[config.preset]
    config.train.base_lr = 0.1
    config.train.warmup_fraction = 0.1
    return config

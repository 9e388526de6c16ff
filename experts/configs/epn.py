r"""The expert prediction network (EPN): predicts from an image which experts' slices it
belongs to (a sigmoid over experts: slices overlap). Domain-prediction selection picks
the expert with the highest geometric-mean EPN probability over a task (paper, Appendix A).

    python -m experts.train --config=experts/configs/epn.py:cpu

Starts from B's backbone with a new zero-initialised head. Needs B finished.
"""

from __future__ import annotations

import ml_collections

from experts.configs import upstream

RULES = upstream.RULES  # the base config's fields: this file only sets their values


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    config = upstream.base_config(preset, "epn")
    config.train.total_steps = {"smoke": 2, "cpu": 300, "paper": 20_000}[config.preset]
    config.train.base_lr = 0.03
    config.train.warmup_fraction = 0.1
    return config

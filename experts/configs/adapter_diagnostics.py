r"""The adapter diagnostics (``experts/bench/adapter_diagnostics.py``) on a trained
upstream work tree: B, the full experts and the adapter experts, read-only.

    python -m experts.bench.adapter_diagnostics \
        --config=experts/configs/adapter_diagnostics.py:cpu --workdir=runs/demo/upstream

The model, the data and the experts are the adapter job's (its recorded config in
``<workdir>/adapter`` names the experts and their order); this file adds how many of
each slice's validation images are read.
"""

from __future__ import annotations

import ml_collections

from experts.configs import adapter
from fanout import config_rules as rule

RULES = {
    **adapter.RULES,
    "diagnostics.max_images": rule.integer(min=2),
    "diagnostics.newton_steps": rule.integer(min=1),
}


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    config = adapter.get_config(preset)
    config.diagnostics = ml_collections.ConfigDict(
        {
            # Validation images per slice (the first ones, in record order): enough
            # for the means of the shift and the losses, cheap on two cores.
            "max_images": {"smoke": 16, "cpu": 1024, "paper": 4096}[config.preset],
            # Newton steps of the per-node head-bias fit (a 1-D convex problem each).
            "newton_steps": 25,
        }
    )
    return config

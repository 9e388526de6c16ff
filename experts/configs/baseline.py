"""The baseline B: BiT ResNet-v2 trained on the whole upstream data (paper, section 4.1).

Launch (the training loop arrives with the upstream-training issue; today this config
drives the model summary):

    python -m experts.models.summary --config=experts/configs/baseline.py:cpu

Presets: smoke | cpu | paper (see presets.py). Override any field with
``--config.<field>=<value>``, e.g. ``--config.model.size=r26x0.5``.
"""

from __future__ import annotations

import ml_collections

from experts.configs import presets


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    preset = presets.parse_preset(preset)
    config = ml_collections.ConfigDict()
    config.preset = preset
    config.model = presets.model_config(preset)
    # Adapter experts add one adapter set per expert on top of B (0 = plain network).
    config.model.num_experts = 0
    return config

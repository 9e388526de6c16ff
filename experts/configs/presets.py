"""Presets shared by every job config.

Every config file under ``experts/configs/`` (and later ``vtab_eval/configs/``) has a
``get_config(preset)`` taking one of these names, so a job is launched as
``--config=experts/configs/baseline.py:cpu`` and tuned with ``--config.<field>=...``.

* ``smoke``: tests; seconds on a laptop.
* ``cpu``: the embedded default data on a 2-core CPU (r26x0.25 at 32 px, about
  880 img/s forward+backward on this project's machines).
* ``paper``: the paper's scale (BiT r50x1 at 224 px); meant for accelerators.
"""

from __future__ import annotations

import ml_collections

PRESETS = ("smoke", "cpu", "paper")
DEFAULT_PRESET = "cpu"


def parse_preset(arg: str | None) -> str:
    """Validates the ``:preset`` suffix of a ``--config`` flag ('' means the default)."""
    preset = (arg or DEFAULT_PRESET).strip()
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return preset


def model_config(preset: str) -> ml_collections.ConfigDict:
    """The backbone and input resolution for a preset."""
    preset = parse_preset(preset)
    size, image_size = {
        "smoke": ("r14x0.125", 32),
        "cpu": ("r26x0.25", 32),
        "paper": ("r50x1", 224),
    }[preset]
    return ml_collections.ConfigDict({"size": size, "image_size": image_size})

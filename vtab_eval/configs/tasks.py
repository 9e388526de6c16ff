r"""What ``vtab_eval.tasks.build`` prepares: a task suite in a tfds data directory.

    python -m vtab_eval.tasks.build --config=vtab_eval/configs/tasks.py:cpu \
        --config.data_dir=runs/tfds --config.suite=embedded

Presets (the project's): ``smoke`` builds the embedded tasks' tiny config (a few
examples per split, for tests); ``cpu`` and ``paper`` their full size. ``suite`` means what it means for ``vtab_eval.main``: a suite name
(embedded, vtab1k) or ';'-separated task specs.
"""

from __future__ import annotations

import ml_collections

from fanout import config_rules as rule

# The same presets as experts/configs/presets.py, restated because vtab_eval never
# imports experts/.
PRESETS = ("smoke", "cpu", "paper")


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    preset = (preset or "cpu").strip()
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    config = ml_collections.ConfigDict()
    config.preset = preset
    config.builder_config = "tiny" if preset == "smoke" else "full"  # the embedded builders'
    config.data_dir = "runs/tfds"  # empty: tfds's default directory
    config.suite = "embedded"
    config.download = False  # let tfds download VTAB-1k data
    config.try_gcs = False  # let tfds fetch prepared data from GCS
    config.grid = ""  # the sample sheet PNG; empty: <data_dir>/<suite>_samples.png
    config.samples = 10  # sample images per task on the sheet
    return config


# One rule per field (fanout/config_rules.py), checked when the binary's flags are parsed.
RULES = {
    "preset": rule.one_of(*PRESETS),
    "builder_config": rule.one_of("full", "tiny"),
    "data_dir": rule.path(empty=True, meaning="tfds's default directory"),
    "suite": rule.exempt("a suite name or task specs, parsed by the task registry"),
    "download": rule.boolean(),
    "try_gcs": rule.boolean(),
    "grid": rule.path(empty=True, meaning="<data_dir>/<suite>_samples.png"),
    "samples": rule.integer(min=1),
}

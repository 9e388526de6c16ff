"""What every upstream job config shares: model, data, work directories, optimiser.

Each job file (baseline.py, full_experts.py, adapter_experts.py, epn.py) starts from
``base_config(preset, job)`` and sets its own step counts and learning rate.

Work directories: one per job under ``<workdir>`` (layout: ``experts/work_tree.py``);
every job after B reads B's final checkpoint from ``<workdir>/baseline``.
"""

from __future__ import annotations

import ml_collections

from experts.configs import presets
from experts.training import loop


def base_config(preset: str | None, job: str) -> ml_collections.ConfigDict:
    preset = presets.parse_preset(preset)
    config = ml_collections.ConfigDict()
    config.preset = preset
    config.job = job
    config.model = presets.model_config(preset)
    config.model.num_experts = 0
    config.data = ml_collections.ConfigDict(
        {
            # A tfds name of a prepared upstream (experts/data/builders).
            "name": "embedded_upstream/32px" if preset != "paper" else "image_folder_upstream",
            "data_dir": "runs/tfds",
            # Empty: the experts chosen automatically when the data was built.
            "experts": (),
            # 0: all of those; N: the N largest (the choice is ordered by image count).
            # The cpu preset trains the 16 largest: within the demo's time, fewer
            # experts trained longer specialise more (RESULTS.md).
            "num_experts": 16 if preset == "cpu" else 0,
        }
    )
    config.workdir = "runs/upstream"
    config.baseline_workdir = ""  # empty: <workdir>/baseline
    config.expert = ""  # full experts: one expert by name; empty trains all in turn
    # Delete a job's earlier work and train it afresh (a rerun with a changed setting
    # is refused otherwise: experts/work_tree.py).
    config.restart = False
    config.strategy = "default"
    config.tpu_address = ""
    config.eval_batch = 256
    config.train = loop.default_train_config()
    config.train.update(
        {
            "smoke": {"total_steps": 2, "global_batch": 8, "log_every": 1, "checkpoint_every": 1},
            "cpu": {
                "global_batch": 128,
                "log_every": 50,
                "checkpoint_every": 250,
                "steps_per_call": 10,
            },
            # BiT upstream: global batch 4096 on a TPUv3-512, 5k warm-up steps, 10x
            # step decays, weight decay 1e-4, many host steps per call.
            "paper": {
                "global_batch": 4096,
                "decay": "step",
                "log_every": 500,
                "checkpoint_every": 5000,
                "steps_per_call": 100,
            },
        }[preset]
    )
    return config

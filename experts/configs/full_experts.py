r"""Full experts: B fine-tuned, head included, on one hierarchy node's slice (paper,
section 4.3). Every expert trains for the same number of steps whatever its slice size.

    python -m experts.train --config=experts/configs/full_experts.py:cpu            # all
    python -m experts.train --config=experts/configs/full_experts.py:cpu \
        --config.expert=script/latin                                              # one

Each expert has its own work directory, so experts can fan out as independent jobs.
Needs B (baseline.py) finished in the same ``--config.workdir``.
"""

from __future__ import annotations

import ml_collections

from experts.configs import upstream


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    config = upstream.base_config(preset, "full")
    # Every expert trains for the same number of steps, as in the paper. At the cpu
    # scale, steps are what make an expert: its margin over B on its own held-out
    # probe grows with them, and triple B's rate destroys more than it adds
    # (RESULTS.md, "Making experts specialise").
    config.train.total_steps = {"smoke": 2, "cpu": 200, "paper": 20_000}[config.preset]
    # B's own rate (0.1 per 256 images), cosine-decayed over the short run.
    config.train.base_lr = 0.1
    config.train.warmup_fraction = 0.1
    return config

r"""Full experts: B fine-tuned, head included, on one hierarchy node's slice (paper,
section 4.3). Every expert trains for the same number of steps whatever its slice size.

    python -m experts.train --config=experts/configs/full_experts.py:cpu            # all
    python -m experts.train --config=experts/configs/full_experts.py:cpu \
        --config.expert=Latin                                                     # one

Each expert has its own work directory, so experts can fan out as independent jobs.
Needs B (baseline.py) finished in the same ``--config.workdir``.
"""

from __future__ import annotations

import ml_collections

from experts.configs import upstream


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    config = upstream.base_config(preset, "full")
    config.train.total_steps = {"smoke": 2, "cpu": 100, "paper": 20_000}[config.preset]
    # B's own rate (0.1 per 256 images), cosine-decayed over the short run. A smaller
    # one (0.03, BiT's fine-tuning habit) left experts within a point of B on every
    # downstream kNN score at 100 steps; at 0.1 the digit expert's kNN score on
    # mini_mnist rose from 75.7 (B) to 78.5 and the emoji/objects one's on clip art
    # from 38.5 to 40.6, so selection has something to choose between.
    config.train.base_lr = 0.1
    config.train.warmup_fraction = 0.1
    return config

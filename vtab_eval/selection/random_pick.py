"""The random-expert reference (paper, section 6.4): a uniformly drawn expert per task.

The draw is seeded by (seed, task spec), so a run is reproducible and resumable; the
scores are the uniform draws themselves, so the pick is their argmax.
"""

from __future__ import annotations

import hashlib

import numpy as np

from vtab_eval.selection.base import Context, Selector, register


@register
class RandomSelector(Selector):
    name = "random"
    display_name = "Random Expert"
    looks_at_task = False
    table_row = 20

    def score(self, task, ctx: Context):
        digest = hashlib.sha256(f"{ctx.seed}:{task.spec}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        draws = rng.random(len(ctx.pool.experts))
        scores = {e.id: float(d) for e, d in zip(ctx.pool.experts, draws, strict=True)}
        for e in ctx.pool.experts:
            if e.id not in self.candidates(ctx.pool):
                scores[e.id] = -1.0  # Scored, never drawn: below every uniform draw.
        return scores, {"seed": ctx.seed}, 0.0

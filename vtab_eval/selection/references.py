"""Reference "selectors": the baseline alone, and the oracle.

- `baseline`: always the baseline B, the paper's "Baseline (No Experts)" row.
- `oracle`: fine-tunes every candidate with the full protocol and picks the best test
  accuracy in hindsight (paper, section 5: "too expensive ... to select the best with
  hindsight"). An upper bound for benchmarks, never a default: its cost is one
  fine-tuning protocol per expert, and it looks at test accuracy.
"""

from __future__ import annotations

from vtab_eval.selection.base import Context, Selector


class BaselineSelector(Selector):
    name = "baseline"

    def candidates(self, pool):
        return [pool.baseline.id]

    def score(self, task, ctx: Context):
        baseline = ctx.pool.baseline.id
        return {e.id: (1.0 if e.id == baseline else 0.0) for e in ctx.pool.experts}, {}, 0.0


class OracleSelector(Selector):
    name = "oracle"

    def score(self, task, ctx: Context):
        if ctx.finetune is None:
            raise ValueError("the oracle needs Context.finetune (a fine-tuning function)")
        candidates = set(self.candidates(ctx.pool))
        scores = {}
        for expert in ctx.pool.experts:
            scores[expert.id] = ctx.finetune(expert) if expert.id in candidates else -1.0
        return scores, {"score": "median test accuracy of the fine-tuning protocol"}, 0.0

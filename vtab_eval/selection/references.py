"""Reference "selectors": the baseline alone, and the oracle.

- `baseline`: always the baseline B, the paper's "Baseline (No Experts)" row.
- `oracle`: fine-tunes every candidate and picks the best test accuracy in hindsight
  (paper, section 5: "too expensive ... to select the best with hindsight"). An upper
  bound for benchmarks, never a default: its cost is fine-tuning every expert, and it
  looks at test accuracy. The runner may screen with part of the protocol's runs
  (`config.oracle.screen_repeats`). When `Context.finetune`
  returns the fine-tuning results (the runner's does), that cost is the sum of their
  recorded `seconds`, whether they ran during the selection or before (the runner
  fine-tunes the whole pool module by module ahead of the per-task loop).
"""

from __future__ import annotations

from collections.abc import Mapping

from vtab_eval.selection.base import Context, SelectionResult, Selector, register


@register
class BaselineSelector(Selector):
    name = "baseline"
    display_name = "Baseline (No Experts)"
    looks_at_task = False
    table_row = 10

    def candidates(self, pool):
        return [pool.baseline.id]

    def score(self, task, ctx: Context):
        baseline = ctx.pool.baseline.id
        return {e.id: (1.0 if e.id == baseline else 0.0) for e in ctx.pool.experts}, {}, 0.0


@register
class OracleSelector(Selector):
    name = "oracle"
    display_name = "Oracle (best in hindsight)"
    uses_labels = True  # the test labels, in hindsight
    fine_tunes_candidates = True
    table_row = 100

    def score(self, task, ctx: Context):
        if ctx.finetune is None:
            raise ValueError("the oracle needs Context.finetune (a fine-tuning function)")
        candidates = set(self.candidates(ctx.pool))
        scores, seconds = {}, 0.0
        for expert in ctx.pool.experts:
            if expert.id not in candidates:
                scores[expert.id] = -1.0
                continue
            outcome = ctx.finetune(expert)
            if isinstance(outcome, Mapping):
                scores[expert.id] = float(outcome["median_test_accuracy"])
                seconds = None if seconds is None else seconds + float(outcome["seconds"])
            else:
                scores[expert.id] = float(outcome)
                seconds = None  # Not timed: the wall time of the call stands.
        details = {"score": "median test accuracy of its fine-tuning runs"}
        if seconds is not None:
            details["finetune_seconds"] = seconds
        return scores, details, 0.0

    def select(self, task, ctx: Context) -> SelectionResult:
        result = super().select(task, ctx)
        if "finetune_seconds" in result.details:
            result.cost_seconds = result.details["finetune_seconds"]
        return result

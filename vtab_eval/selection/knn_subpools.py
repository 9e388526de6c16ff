"""kNN restricted to part of the pool: the paper's Table 1 rows "kNN (full experts)"
and "kNN (adapter experts)", and kNN over the experts without the baseline, next to
kNN over the whole pool; and kNN over the whole pool without its fallback test.

They score and pick within the sub-pool only (the baseline is scored for the plots, as
every selector does), so their cost counts that sub-pool's forward passes. Features are
the same cache entries kNN over all experts uses, so running all three costs one
feature extraction.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from vtab_eval.selection.base import Context, SelectionResult, register
from vtab_eval.selection.knn import KnnSelector


class _KnnSubPool(KnnSelector):
    kind: ClassVar[str]
    # kNN's scores over part of the pool: the report compares kNN's own with fine-tuning.
    is_proxy = False

    def select(self, task, ctx: Context) -> SelectionResult:
        experts = tuple(e for e in ctx.pool.experts if e.kind == self.kind or e.is_baseline)
        if not any(e.kind == self.kind for e in experts):
            raise ValueError(f"selector {self.name}: the pool has no {self.kind!r} experts")
        sub_pool = dataclasses.replace(ctx.pool, experts=experts)
        return super().select(task, dataclasses.replace(ctx, pool=sub_pool))


@register
class KnnFullSelector(_KnnSubPool):
    name = "knn_full"
    display_name = "kNN (full experts)"
    kind = "full"
    table_row = 50


@register
class KnnAdapterSelector(_KnnSubPool):
    name = "knn_adapter"
    display_name = "kNN (adapter experts)"
    kind = "adapter"
    table_row = 60


@register
class KnnNoFallbackSelector(KnnSelector):
    """kNN over the whole pool picking its best score outright, B included, with no
    paired test against B: `knn` without its fallback, for the comparison."""

    name = "knn_nofallback"
    display_name = "kNN (no fallback test)"
    is_proxy = False  # kNN's scores; the report compares kNN's own with fine-tuning
    table_row = 75

    def __init__(self, k: int = 1, float64: bool = False, include_baseline: bool = False,
                 fallback_level: float = 0.0):  # fmt: skip
        super().__init__(k, float64, include_baseline, fallback_level=0.0)


@register
class KnnExpertsSelector(KnnSelector):
    """kNN that never falls back on the baseline, whatever `include_baseline` says: the
    pool without B, next to `knn` over the pool with it."""

    name = "knn_experts"
    display_name = "kNN (experts only, no B)"
    is_proxy = False  # kNN's scores; the report compares kNN's own with fine-tuning
    table_row = 70

    def candidates(self, pool):
        return [e.id for e in pool.non_baseline()] or pool.ids

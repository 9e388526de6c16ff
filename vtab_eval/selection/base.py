"""The selector interface: score every expert of a pool for one task, pick the best.

Scores are "higher is better" for every proxy (label matching reports -KL). A selector
picks among the pool's experts; the baseline is scored too (for the plots) but only
picked when `include_baseline` is set (the default of every preset: a task no expert
suits falls back on the generic model, paper section 7) or the pool holds nothing else.

Ties between experts resolve to the first in pool order (discovery sorts by path), so
a selection is a pure function of its inputs.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from fanout.registry import Registry
from vtab_eval import files
from vtab_eval.features import FeatureStore
from vtab_eval.pool.expert_pool import Module, Pool

# Every selector, registered by its own module (`@register` on the class); the package
# imports each module of its folder, so a new selector is one new file.
SELECTORS = Registry("selector")
register = SELECTORS.register


@dataclasses.dataclass
class Context:
    """What selectors may use: the pool, the feature cache, the split to score on, a
    seed, and (for the oracle only) a function fine-tuning one expert on the task, which
    returns its median test accuracy or the protocol's results (a mapping with at least
    `median_test_accuracy` and `seconds`)."""

    pool: Pool
    store: FeatureStore
    split: str = "train800val200"
    seed: int = 0
    finetune: Callable[[Module], float | Mapping[str, Any]] | None = None


@dataclasses.dataclass
class SelectionResult:
    """One selector's verdict on one task, as written to `<selector>.json`.

    `seconds` is this call's wall time; `cost_seconds` is the selection's compute cost
    counting the forward passes as they cost when first computed (cached features make
    a rerun fast, but the proxy's cost is the same), which the speed-up report uses.
    """

    selector: str
    task: str
    scores: dict[str, float]
    pick: str
    seconds: float
    cost_seconds: float
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        # JSON has no infinity: unscorable experts are written as null.
        data["scores"] = {k: (v if math.isfinite(v) else None) for k, v in self.scores.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SelectionResult:
        data = dict(data)
        data["scores"] = {
            k: (float(v) if v is not None else -math.inf) for k, v in data["scores"].items()
        }
        return cls(**data)

    def write(self, path) -> None:
        files.write_json(path, self.to_json())


def best(scores: Mapping[str, float], candidates: list[str]) -> str:
    """The candidate with the highest score; the first in `candidates` order on ties."""
    finite = [c for c in candidates if c in scores and math.isfinite(scores[c])]
    if not finite:
        raise ValueError(f"no candidate has a finite score: {dict(scores)}")
    top = max(scores[c] for c in finite)
    return next(c for c in finite if scores[c] == top)


class Selector(abc.ABC):
    """One proxy. Subclasses implement `score`; `select` times it and picks.

    Each describes itself, so the runner and the reports never branch on names:
    `display_name` is its row in the tables; `needs` says which modules' outputs it
    reads (`features`: every expert's embedding of the task; `epn` or `classifier`:
    that upstream module's; nothing: none); `uses_labels` whether it looks at the
    task's labels; `looks_at_task` whether it looks at the task at all (B and a random
    pick do not, so their selection has no cost to weigh); `from_config` builds it
    from the run's `selection` config section.

    `fine_tunes_candidates`: it scores experts by fine-tuning them (the oracle), so the
    runner fine-tunes its candidates ahead of the per-task loop. `is_proxy`: a
    performance proxy whose per-expert scores the report compares with fine-tuned
    accuracy and whose cost it weighs against fine-tuning every expert; `short_name`
    names it in the report's prose and `score_label` its scores on the plots.
    `table_row` places it in the tables (the paper's Table 1 order, ascending; a new
    proxy lands after kNN and before the oracle). `combines`: not a pick but an
    ensemble of the top experts of a proxy's ranking (``finetuned``: fine-tuned
    experts; ``heads``: logistic heads on their frozen features), which the runner
    builds (``vtab_eval.ensembles``) instead of calling `select`.
    """

    name: ClassVar[str]
    display_name: ClassVar[str]
    needs: ClassVar[str] = ""
    uses_labels: ClassVar[bool] = False
    looks_at_task: ClassVar[bool] = True
    fine_tunes_candidates: ClassVar[bool] = False
    is_proxy: ClassVar[bool] = False
    short_name: ClassVar[str] = ""
    score_label: ClassVar[str] = "proxy score"
    table_row: ClassVar[int] = 90
    combines: ClassVar[str] = ""

    def __init__(self, include_baseline: bool = False):
        self.include_baseline = include_baseline

    @classmethod
    def from_config(cls, selection) -> Selector:
        """This selector from a run's `selection` config section."""
        return cls(include_baseline=selection.include_baseline)

    @abc.abstractmethod
    def score(self, task, ctx: Context) -> tuple[dict[str, float], dict[str, Any], float]:
        """Returns (score per expert id, details, seconds of forward passes included)."""

    def candidates(self, pool: Pool) -> list[str]:
        others = [e.id for e in pool.non_baseline()]
        if self.include_baseline or not others:
            return pool.ids
        return others

    def select(self, task, ctx: Context) -> SelectionResult:
        start = time.perf_counter()
        before = ctx.store.compute_seconds + ctx.store.load_seconds
        scores, details, forward_seconds = self.score(task, ctx)
        pick = best(scores, self.candidates(ctx.pool))
        seconds = time.perf_counter() - start
        # Scoring time proper is the wall time minus forward passes and module loading
        # during this call; the cost adds every forward pass the selector used, computed
        # now or read from the cache (module loading is amortised over tasks, not counted).
        scoring = seconds - (ctx.store.compute_seconds + ctx.store.load_seconds - before)
        return SelectionResult(
            selector=self.name,
            task=task.spec,
            scores={k: float(v) for k, v in scores.items()},
            pick=pick,
            seconds=seconds,
            cost_seconds=max(0.0, scoring) + forward_seconds,
            details=details,
        )

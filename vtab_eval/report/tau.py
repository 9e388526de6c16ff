"""Rank agreement between a proxy's scores and fine-tuned accuracy, summarised per task
relation (``Task.relation``: matched, weak, unrelated; "undeclared" when a task names
none): the median over tasks of Kendall's tau and of weighted tau, over B and the full
experts and over the whole pool.

A tau needs ``stats.MIN_POINTS_FOR_TAU`` fine-tuned experts on a task (over fewer it is
+-1 or nearly so); a relation without such a task has no row, and a run without any
(the demo, which fine-tunes the picks only) has no table at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from vtab_eval.report import stats

UNDECLARED = "undeclared"
# The experts each tau is over: B and the full experts (one kind of expert, as a pool
# of full experts alone would be), and every expert fine-tuned on the task.
TAU_SUBSETS = {"B + full experts": ("baseline", "full"), "whole pool": None}


def tau_summary(correlation: dict[str, dict], relations: dict, kinds: dict) -> list[list]:
    """[relation, experts, tasks, median tau, median weighted tau] per expert set and
    relation (then "all"); `correlation` is one proxy's ``tables.proxy_correlations``,
    `relations` {task: relation or None}, `kinds` {expert: kind} (an expert of unknown
    kind counts in the whole pool only)."""
    rows = []
    for subset, allowed in TAU_SUBSETS.items():
        taus: dict[str, list[tuple[float, float]]] = {}
        for task, c in correlation.items():
            points = [p for p in c["points"] if allowed is None or kinds.get(p[0]) in allowed]
            if len(points) < stats.MIN_POINTS_FOR_TAU:
                continue
            x, y = [p[1] for p in points], [p[2] for p in points]
            pair = (stats.kendall_tau(x, y), stats.weighted_tau(x, y))
            for relation in (relations.get(task) or UNDECLARED, "all"):
                taus.setdefault(relation, []).append(pair)
        for relation, pairs in sorted(taus.items(), key=lambda kv: kv[0] == "all"):
            rows.append([relation, subset, len(pairs), *map(_median, np.array(pairs).T)])
    return rows


def _median(values: np.ndarray) -> float:
    """The median of the defined values (a constant proxy or accuracy has no tau)."""
    values = values[~np.isnan(values)]
    return float(np.median(values)) if len(values) else math.nan


def tau_lines(correlations: dict, relations: dict, kinds: dict, table: Callable) -> list[str]:
    """The summary's tau table, by proxy name (`correlations` {name: correlation}), drawn
    with `table(header, rows)`; nothing when no task has enough fine-tuned experts."""
    rows = [
        [name, *row[:3], *("n/a" if math.isnan(v) else f"{v:+.2f}" for v in row[3:])]
        for name, c in correlations.items()
        for row in tau_summary(c, relations, kinds)
    ]
    if not rows:
        return []
    header = ["proxy", "relation", "experts", "tasks", "median tau", "median weighted tau"]
    return [
        table(header, rows),
        f"Over the tasks where at least {stats.MIN_POINTS_FOR_TAU} experts of the set were "
        "fine-tuned (the oracle's screening fine-tunes them all), on runs no proxy saw. "
        "Weighted tau (`scipy.stats.weightedtau`) counts swaps among the top-ranked most.",
        "",
    ]

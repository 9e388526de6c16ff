"""Every proxy judged against fine-tuning: how well its scores order the modules by
their fine-tuned accuracy, and what its top-1 pick is worth, per task and summarised
over the pool or part of it, per task group and per relation to the upstream.

Inputs, all keyed by task (the fine-tuned accuracies must come from runs independent
of any used to pick, so the judgement has no selection bias):

    scores[task][proxy][module]   the proxy's score (higher is better; non-finite or
                                  missing: not scored)
    accuracies[task][module]      the module's fine-tuned accuracy on the task
    seconds[task][proxy]          the proxy's wall time on the task (all modules)
    tasks[task]                   {"group": ..., "relation": ... or None}

Per (task, proxy), over the modules of a subset that have both a finite score and an
accuracy: weighted Kendall tau (`scipy.stats.weightedtau`, its default hyperbolic
weights, so the top of the ranking counts most), Kendall tau, the relative accuracy
of its top-1 pick (the pick's accuracy over the best accuracy among those modules;
ties go to the first module in the input's order), the regret (best minus the pick's)
and the seconds per module. A task with fewer than two such modules, or constant
scores or accuracies, has no tau (NaN), which the summaries skip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
from scipy import stats

from vtab_eval import run_dir

ALL = "all"


def screened(task_dir) -> dict[str, dict]:
    """{module: {"accuracy", "kind"}} of the oracle's screening runs on one task (seeds
    of their own, which no proxy sees; one run setting for every module), from its
    directory in a run; empty when the oracle did not screen it. Screenings of two
    settings (``oracle.screen_repeats`` changed between runs) are an error: their
    accuracies are not comparable across modules."""
    kinds = sorted(
        {path.parent.name for path in Path(task_dir).glob(f"{run_dir.SCREENING}/*.json")}
    )
    if len(kinds) > 1:
        raise ValueError(
            f"{task_dir}: screening runs of several settings ({', '.join(kinds)}); keep one "
            "(the oracle.screen_repeats the run uses) to judge the proxies"
        )
    records = run_dir.TaskDir(Path(task_dir)).finetune_records(run_dir.SCREENING)
    return {
        r["expert"]: {"accuracy": r["median_test_accuracy"], "kind": r.get("kind")} for r in records
    }


def judge_task(
    scores: Mapping[str, float], accuracies: Mapping[str, float], modules: Iterable[str]
) -> dict[str, float]:
    """The metrics of one proxy on one task over `modules` (an order: ties)."""
    kept = [
        m
        for m in modules
        if m in accuracies and m in scores and scores[m] is not None and math.isfinite(scores[m])
    ]
    nan = float("nan")
    if not kept:
        return {"weighted_tau": nan, "kendall_tau": nan, "relative_accuracy": nan,
                "regret": nan, "modules": 0}  # fmt: skip
    x = np.array([scores[m] for m in kept], float)
    y = np.array([accuracies[m] for m in kept], float)
    pick = kept[int(np.argmax(x))]  # the first maximum
    best = float(y.max())
    varied = len(kept) >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0
    return {
        "weighted_tau": float(stats.weightedtau(x, y).statistic) if varied else nan,
        "kendall_tau": float(stats.kendalltau(x, y).statistic) if varied else nan,
        "relative_accuracy": accuracies[pick] / best if best > 0 else nan,
        "regret": best - accuracies[pick],
        "pick": pick,
        "modules": len(kept),
    }


def per_task(scores, accuracies, seconds, subsets: Mapping[str, Callable[[str], bool]]):
    """{subset: {proxy: {task: metrics}}} for every task, proxy and subset of modules
    (`subsets`: name -> predicate on module ids; the whole pool is `ALL`)."""
    out: dict = {name: {} for name in subsets}
    for task, by_proxy in scores.items():
        order = list(accuracies.get(task, {}))
        for proxy, proxy_scores in by_proxy.items():
            for name, keep in subsets.items():
                metrics = judge_task(proxy_scores, accuracies.get(task, {}), filter(keep, order))
                total = seconds.get(task, {}).get(proxy, float("nan"))
                metrics["seconds_per_module"] = (
                    total / len(proxy_scores) if proxy_scores else float("nan")
                )
                out[name].setdefault(proxy, {})[task] = metrics
    return out


def summary(rows: list[dict]) -> dict[str, float]:
    """The summary metrics of one proxy over per-task `rows` (see `summarise`)."""

    def values(key):
        v = np.array([r[key] for r in rows], float)
        return v[np.isfinite(v)]

    def median(key):
        v = values(key)
        return float(np.median(v)) if len(v) else float("nan")

    def mean(key):
        v = values(key)
        return float(np.mean(v)) if len(v) else float("nan")

    return {
        "tasks": len(rows),
        "taus": len(values("weighted_tau")),  # the tasks with a defined tau
        "median_weighted_tau": median("weighted_tau"),
        "mean_weighted_tau": mean("weighted_tau"),
        "mean_kendall_tau": mean("kendall_tau"),
        "mean_relative_accuracy": mean("relative_accuracy"),
        "mean_regret": mean("regret"),
        "median_seconds_per_module": median("seconds_per_module"),
    }


def summarise(judged, tasks: Mapping[str, Mapping]) -> list[dict]:
    """One row per (subset, proxy, slice): the slices are every task (`ALL`), each
    task group (`group=<g>`) and each declared relation (`relation=<r>`; tasks without
    one are left out of those slices)."""
    rows = []
    for subset, by_proxy in judged.items():
        for proxy, by_task in by_proxy.items():
            slices: dict[str, list[dict]] = {ALL: list(by_task.values())}
            for task, metrics in by_task.items():
                info = tasks.get(task, {})
                if info.get("group"):
                    slices.setdefault(f"group={info['group']}", []).append(metrics)
                if info.get("relation"):
                    slices.setdefault(f"relation={info['relation']}", []).append(metrics)
            for name, members in slices.items():
                rows.append({"subset": subset, "proxy": proxy, "slice": name, **summary(members)})
    return rows


def markdown(rows: list[dict], subset: str = ALL, slice_name: str = ALL) -> str:
    """The rows of one subset and slice as a Markdown table, best median tau first."""
    chosen = [r for r in rows if r["subset"] == subset and r["slice"] == slice_name]
    chosen.sort(
        key=lambda r: (
            -r["median_weighted_tau"] if math.isfinite(r["median_weighted_tau"]) else math.inf
        )
    )
    lines = [
        "| proxy | tasks | median w-tau | mean tau | rel. acc. of pick | regret | s / module |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in chosen:
        lines.append(
            f"| {r['proxy']} | {r['tasks']} | {r['median_weighted_tau']:.3f} | "
            f"{r['mean_kendall_tau']:.3f} | {r['mean_relative_accuracy']:.3f} | "
            f"{r['mean_regret']:.4f} | {r['median_seconds_per_module']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def _is_finite(value) -> bool:
    return value is not None and math.isfinite(value)


def tau_against_cost(rows: list[dict], path: Path, subset: str = ALL) -> Path | None:
    """Median weighted tau against median seconds per module, one point per proxy."""
    from vtab_eval.report import plots

    plt = plots.pyplot(path)
    if plt is None:
        return None
    chosen = [
        r
        for r in rows
        if r["subset"] == subset
        and r["slice"] == ALL
        and all(_is_finite(r[k]) for k in ("median_seconds_per_module", "median_weighted_tau"))
    ]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for r in chosen:
        ax.scatter(r["median_seconds_per_module"], r["median_weighted_tau"])
        ax.annotate(r["proxy"], (r["median_seconds_per_module"], r["median_weighted_tau"]),
                    fontsize=7, xytext=(3, 3), textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("seconds per (task, module)")
    ax.set_ylabel("median weighted Kendall tau")
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.set_title(f"Proxies: agreement with fine-tuning against cost ({subset})")
    return plots.save(plt, fig, path)

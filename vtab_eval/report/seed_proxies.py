"""Every transferability proxy judged against fine-tuning over a multi-seed bench's seeds.

On the seeds whose transfer run screened every module (the oracle's screening: one
fine-tuning run per (task, module), with seeds no proxy sees), each proxy's scores are
judged per (seed, task) against the screening accuracies (report/proxies.py: weighted
Kendall tau, the relative accuracy and regret of its top-1 pick, seconds per module),
over the whole pool and over B plus the full experts. The summaries pool the (seed,
task)s: every task, the matched and weakly related ones together (where the paper's
kind of gain is), each relation and each group. Each proxy is compared with the
paper's kNN on the same (seed, task)s: the mean paired difference in weighted tau and
a sign-flip test of it, so "beats kNN" means beyond the noise of tasks and seeds.
"""

from __future__ import annotations

import math

import numpy as np

from vtab_eval.report import proxies, stats
from vtab_eval.report.tau import TAU_SUBSETS

SCORES = "_scores"  # a task entry's "<proxy>_scores" in a transfer report's results.json
# The module kinds of B and the full experts, as the single run's tau table groups them.
B_AND_FULL = TAU_SUBSETS["B + full experts"]
WHOLE_POOL = "whole pool"
SUBSETS = {WHOLE_POOL: None, "B + full": B_AND_FULL}
NEAR = ("matched", "weak")  # the relations the tau target is about
TARGET_TAU = 0.5  # the median weighted tau on matched and weak tasks the bench asks for
# The family-wise level of the verdict that a proxy orders modules better or worse than
# kNN (Holm's correction over the proxies of one table).
LEVEL = 0.05


def collect(results: dict[int, dict]) -> tuple[dict, dict, dict, dict, dict]:
    """(scores, accuracies, seconds, tasks, kinds) keyed by (seed, task), from each
    seed's results.json record (`results`: {seed: record}), over the tasks it screened
    (a report written before results.json kept the screening has none)."""
    scores, accuracies, seconds, tasks, kinds = {}, {}, {}, {}, {}
    for seed, record in sorted(results.items()):
        for entry in record.get("tasks", []):
            if not entry.get("screened"):
                continue
            key = (seed, entry["task"])
            accuracies[key] = {m: s["accuracy"] for m, s in entry["screened"].items()}
            kinds.update({m: s.get("kind") for m, s in entry["screened"].items()})
            tasks[key] = {"group": entry.get("group"), "relation": entry.get("relation")}
            for field, values in entry.items():
                if field.endswith(SCORES) and values:
                    proxy = field[: -len(SCORES)]
                    scores.setdefault(key, {})[proxy] = values
                    method = entry.get("methods", {}).get(proxy, {})
                    seconds.setdefault(key, {})[proxy] = method.get("selection_seconds", math.nan)
    return scores, accuracies, seconds, tasks, kinds


def judge(results: dict[int, dict], config) -> dict | None:
    """The record of the section (see the module docstring), or None when no seed has
    screening runs beside proxy scores."""
    scores, accuracies, seconds, tasks, kinds = collect(results)
    if not scores:
        return None
    subsets = {
        name: (lambda m: True) if allowed is None else (lambda m, a=allowed: kinds.get(m) in a)
        for name, allowed in SUBSETS.items()
    }
    judged = proxies.per_task(scores, accuracies, seconds, subsets)
    slices = _slices(tasks)
    rows = []
    for subset, by_proxy in judged.items():
        for proxy, by_task in by_proxy.items():
            for name, members in slices.items():
                picked = [by_task[t] for t in members if t in by_task]
                if picked:
                    row = {"subset": subset, "proxy": proxy, "slice": name}
                    row.update(proxies.summary(picked))
                    reference = by_proxy.get(config.proxy_reference)
                    row.update(_against_reference(by_task, reference, members, config))
                    rows.append(row)
    return {
        "reference": config.proxy_reference,
        "seeds": sorted({seed for seed, _ in accuracies}),
        "tasks": len(accuracies),
        "slices": {name: len(members) for name, members in slices.items()},
        "rows": [{k: _or_none(v) for k, v in row.items()} for row in rows],
    }


def _or_none(value):
    """None for a figure that is not defined (a NaN tau: constant scores or accuracies
    everywhere), which JSON cannot hold; any other value as it is."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _is_finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _slices(tasks: dict[tuple, dict]) -> dict[str, list[tuple]]:
    out = {proxies.ALL: list(tasks)}
    near = [t for t, info in tasks.items() if info.get("relation") in NEAR]
    if near:
        out["relation=" + "+".join(NEAR)] = near
    for key in ("relation", "group"):
        for task, info in tasks.items():
            if info.get(key):
                out.setdefault(f"{key}={info[key]}", []).append(task)
    return out


def _against_reference(by_task: dict, reference: dict | None, members, config) -> dict:
    """The mean difference in weighted tau from the reference proxy's, and the sign-flip
    p of it with tasks as the units: a task's differences on several seeds are averaged
    first, as one task on several upstream seeds is not independent evidence."""
    nan = {"tau_vs_knn": math.nan, "tau_vs_knn_p": math.nan, "tasks_paired": 0}
    if reference is None:
        return nan
    per_task: dict[str, list[float]] = {}
    for key in members:
        if key in by_task and key in reference:
            d = by_task[key]["weighted_tau"] - reference[key]["weighted_tau"]
            if math.isfinite(d):
                per_task.setdefault(key[1], []).append(d)
    if not per_task:
        return nan
    means = [float(np.mean(d)) for d in per_task.values()]
    p = 1.0
    if any(means):
        p, _ = stats.sign_flip_test(means, num_samples=config.permutation_samples, seed=config.seed)
    return {"tau_vs_knn": float(np.mean(means)), "tau_vs_knn_p": p, "tasks_paired": len(means)}


def lines(record: dict | None) -> list[str]:
    """The section's markdown: per subset of modules, the proxies over every task and
    over the matched and weak ones, then their median weighted tau per slice."""
    if not record:
        return []
    seeds = ", ".join(map(str, record["seeds"]))
    out = [
        f"## Proxies against fine-tuning (seeds {seeds}; {record['tasks']} (seed, task)s)",
        "",
        "Each proxy's scores against the test accuracy of the oracle's screening run of "
        "every module (seeds of their own, which no proxy sees), per (seed, task): median "
        "weighted Kendall tau (`scipy.stats.weightedtau`), mean Kendall tau, the relative "
        "accuracy and regret of its top-1 pick, seconds per module; taus: the (seed, "
        "task)s with a defined tau. vs kNN: the mean difference in weighted tau from "
        "kNN's, a task's seeds averaged first, and its sign-flip p with tasks as the units "
        "(one task on several upstream seeds is not independent evidence).",
        "",
    ]
    near = "relation=" + "+".join(NEAR)
    for subset in SUBSETS:
        for name in (proxies.ALL, near):
            chosen = [r for r in record["rows"] if r["subset"] == subset and r["slice"] == name]
            if chosen:
                out += [
                    f"**{subset}, {name} tasks**",
                    "",
                    *_summary_table(chosen, record["reference"]),
                    "",
                ]
        out += [f"**{subset}: median weighted tau per slice**", ""]
        out += [*_slice_table(record, subset), ""]
    out += _target_lines(record, near)
    out += _verdict_lines(record, near)
    return out


def _fmt(value: float | None, digits: int = 3, sign: str = "") -> str:
    return f"{value:{sign}.{digits}f}" if _is_finite(value) else "n/a"


def _by_tau(rows: list[dict]) -> list[dict]:
    def key(r):
        tau = r["median_weighted_tau"]
        return -tau if _is_finite(tau) else math.inf

    return sorted(rows, key=key)


def _summary_table(rows: list[dict], reference: str) -> list[str]:
    header = ["proxy", "(seed, task)s", "taus", "median w-tau", "mean tau",
              "rel. acc. of pick", "regret", "s / module", "w-tau - kNN", "p"]  # fmt: skip
    out = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for r in _by_tau(rows):
        cells = [r["proxy"], str(r["tasks"]), str(r["taus"]), _fmt(r["median_weighted_tau"]),
                 _fmt(r["mean_kendall_tau"]), _fmt(r["mean_relative_accuracy"]),
                 _fmt(r["mean_regret"], 4), _fmt(r["median_seconds_per_module"], 4),
                 "-" if r["proxy"] == reference else _fmt(r["tau_vs_knn"], sign="+"),
                 "-" if r["proxy"] == reference else _fmt(r["tau_vs_knn_p"], 3)]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    return out


def _slice_table(record: dict, subset: str) -> list[str]:
    rows = [r for r in record["rows"] if r["subset"] == subset]
    names = [s for s in record["slices"] if s != proxies.ALL]
    tau = {(r["proxy"], r["slice"]): r["median_weighted_tau"] for r in rows}
    sizes = record["slices"]
    header = ["proxy"] + [f"{n.split('=')[1]} ({sizes[n]})" for n in names]
    out = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(names)]
    for r in _by_tau([r for r in rows if r["slice"] == proxies.ALL]):
        cells = [_fmt(tau.get((r["proxy"], n)), 2) for n in names]
        out.append("| " + " | ".join([r["proxy"], *cells]) + " |")
    return out


def _target_lines(record: dict, near: str) -> list[str]:
    out = []
    for subset in SUBSETS:
        rows = [r for r in record["rows"] if r["subset"] == subset and r["slice"] == near]
        rows = [r for r in rows if _is_finite(r["median_weighted_tau"])]
        if not rows:
            continue
        best = _by_tau(rows)[0]
        met = "met" if best["median_weighted_tau"] >= TARGET_TAU else "**not met**"
        reference = next((r for r in rows if r["proxy"] == record["reference"]), None)
        knn = "" if reference is None else f"; kNN {_fmt(reference['median_weighted_tau'], 2)}"
        out.append(
            f"- {subset}, matched and weak tasks: the best median weighted tau of "
            f"{len(rows)} proxies is {best['proxy']}'s {_fmt(best['median_weighted_tau'], 2)}"
            f"{knn} (target >= {TARGET_TAU}: {met}; the best of several is biased upward, "
            "so the verdicts below say whether it is beyond noise)."
        )
    return [*out, ""] if out else []


def _verdict_lines(record: dict, near: str) -> list[str]:
    """Which proxies order the modules better or worse than kNN beyond noise, per subset,
    over every task and the near ones: Holm-adjusted sign-flip p < LEVEL over the proxies
    of each table."""
    out = []
    for subset in SUBSETS:
        for name, label in ((proxies.ALL, "every task"), (near, "matched and weak tasks")):
            rows = [r for r in record["rows"] if r["subset"] == subset and r["slice"] == name]
            rows = [
                r
                for r in rows
                if r["proxy"] != record["reference"] and _is_finite(r["tau_vs_knn_p"])
            ]
            if not rows:
                continue
            adjusted = holm([r["tau_vs_knn_p"] for r in rows])
            found = {"better": [], "worse": []}
            for r, p in zip(rows, adjusted, strict=True):
                if p < LEVEL and r["tau_vs_knn"] != 0:
                    side = "better" if r["tau_vs_knn"] > 0 else "worse"
                    found[side].append(f"{r['proxy']} ({r['tau_vs_knn']:+.2f}, Holm p {p:.2g})")
            out.append(
                f"- {subset}, {label}: better than kNN beyond noise (Holm p < {LEVEL}): "
                f"{', '.join(found['better']) or 'none'}; worse: {', '.join(found['worse']) or 'none'}."
            )
    return [*out, ""] if out else []


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order."""
    order = np.argsort(p_values, kind="stable")
    m, running, adjusted = len(p_values), 0.0, [0.0] * len(p_values)
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted

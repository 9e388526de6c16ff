"""Bench README parts on how well experts and their selection work: the specialisation
probes, and the rank agreement between kNN scores and fine-tuned accuracy."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from vtab_eval import files, run_dir
from vtab_eval.report import stats
from vtab_eval.report import tables as report

TARGET_MEDIAN_TAU = 0.4
MIN_EXPERTS_FOR_TAU = stats.MIN_POINTS_FOR_TAU


def tau_rows(results: dict, oracle: dict[str, dict[str, dict]]) -> list[dict]:
    """Per task: Kendall's tau and weighted tau between the kNN score and the screened
    (or fine-tuned) test accuracy over the experts the oracle ran."""
    rows = []
    for task in results["tasks"]:
        runs = oracle.get(task["task"], {})
        scores = task.get("knn_scores", {})
        experts = [e for e in runs if scores.get(e) is not None and math.isfinite(scores[e])]
        if len(experts) < MIN_EXPERTS_FOR_TAU:
            continue
        x = [scores[e] for e in experts]
        y = [runs[e]["median_test_accuracy"] for e in experts]
        rows.append(
            {
                "task": task["short"],
                "experts": len(experts),
                "tau": stats.kendall_tau(x, y),
                "weighted_tau": stats.weighted_tau(x, y),
            }
        )
    return rows


def _fmt(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:+.2f}"


def tau_lines(results: dict, oracle: dict[str, dict[str, dict]]) -> list[str]:
    rows = tau_rows(results, oracle)
    if not rows:
        return [
            f"Missing: no task has the oracle's runs of {MIN_EXPERTS_FOR_TAU} or more "
            "experts, so there is no rank correlation yet (run the oracle: `make bench`)."
        ]
    taus = [r["tau"] for r in rows if not math.isnan(r["tau"])]
    weighted = [r["weighted_tau"] for r in rows if not math.isnan(r["weighted_tau"])]
    median = statistics.median(taus) if taus else float("nan")
    met = "met" if median >= TARGET_MEDIAN_TAU else "**not met**"
    table = report.markdown_table(
        ["task", "experts", "Kendall tau", "weighted tau"],
        [[r["task"], str(r["experts"]), _fmt(r["tau"]), _fmt(r["weighted_tau"])] for r in rows],
    )
    return [
        "Per task, over the experts the oracle ran: kNN score against their test accuracy "
        "(`scipy.stats.kendalltau`, and `weightedtau`, which counts swaps near the top "
        "most).",
        "",
        table,
        f"Median Kendall tau {_fmt(median)} over {len(taus)} tasks (positive on "
        f"{sum(t > 0 for t in taus)}), target >= {TARGET_MEDIAN_TAU}: {met}. Median "
        f"weighted tau {_fmt(statistics.median(weighted) if weighted else float('nan'))}.",
    ]


def probe_lines(bench_dir: Path) -> list[str]:
    """The specialisation benchmark's summary (``vtab_eval.bench.probes``)."""
    path = bench_dir / "probes" / "probes.json"
    if not path.exists():
        return ["Missing: `probes/probes.json` (run `make bench`)."]
    record = files.read_json(path)
    saturated = [r["node"] for r in record["probes"] if r["saturated"]]
    lines = [
        record["summary_line"],
        "",
        f"{len(record['probes'])} probes, {len(record['matrix'])} modules: "
        "[the table](probes/probes.md), [the matrix relative to B](probes/probes.png).",
    ]
    if saturated:
        lines.append(
            f"B's accuracy is outside 25-85% (saturated or too hard) on {len(saturated)}: "
            + ", ".join(saturated)
            + "."
        )
    return lines


# The module kinds of the "B + full experts" subset (the paper's pool of one upstream).
B_AND_FULL = ("baseline", "full")


def proxy_judgement(workdir: Path, results: dict, screened: dict[str, dict[str, dict]]):
    """Every performance proxy the run scored, judged against the oracle's screening
    runs (`report.proxies`): runs with seeds of their own that no proxy sees, so the
    judgement has no selection bias. Returns (summary rows, subsets) or None when the
    run has no screening runs or no proxy's scores."""
    from vtab_eval import selection
    from vtab_eval.report import proxies

    run = run_dir.RunDir(workdir)
    names = selection.SELECTORS.where(lambda cls: cls.is_proxy)
    chosen = {name: run.selections(name) for name in names}
    chosen = {name: records for name, records in chosen.items() if records}
    if not screened or not chosen:
        return None
    scores, seconds = {}, {}
    for name, records in chosen.items():
        for task, record in records.items():
            if task in screened:
                scores.setdefault(task, {})[name] = record["scores"]
                seconds.setdefault(task, {})[name] = record["cost_seconds"]
    accuracies = {
        task: {m: r["median_test_accuracy"] for m, r in runs.items()}
        for task, runs in screened.items()
    }
    kinds = {m: r.get("kind") for runs in screened.values() for m, r in runs.items()}
    subsets = {proxies.ALL: lambda m: True, "B + full": lambda m: kinds.get(m) in B_AND_FULL}
    judged = proxies.per_task(scores, accuracies, seconds, subsets)
    tasks = {
        t["task"]: {"group": t["group"], "relation": t.get("relation")} for t in results["tasks"]
    }
    return proxies.summarise(judged, tasks), list(subsets)


def proxy_lines(workdir: Path, results: dict, screened: dict[str, dict[str, dict]]) -> list[str]:
    """The proxies' table per subset of modules, over every task and per relation."""
    from vtab_eval.report import proxies

    judged = proxy_judgement(workdir, results, screened)
    if judged is None:
        return [
            "Missing: no proxy's scores beside the oracle's screening runs (run `make bench`: "
            "its transfer runs score every proxy and screen every module)."
        ]
    rows, subsets = judged
    lines = [
        "Each proxy's scores against the test accuracy of the oracle's screening runs of "
        "every module (seeds of their own; no proxy sees them): median weighted Kendall "
        "tau (`scipy.stats.weightedtau`), mean Kendall tau, the relative accuracy and "
        "regret of its top-1 pick, and its seconds per module.",
        "",
    ]
    slices = sorted({r["slice"] for r in rows if r["slice"].startswith("relation=")})
    for subset in subsets:
        for slice_name in [proxies.ALL, *slices]:
            lines += [
                f"**{subset}, {slice_name} tasks**",
                "",
                proxies.markdown(rows, subset, slice_name),
            ]
    return lines

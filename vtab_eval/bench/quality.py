"""Bench README parts on how well experts and their selection work: the specialisation
probes, and the rank agreement between kNN scores and fine-tuned accuracy."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from vtab_eval import files
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

"""The report of a run, from the JSON files in its work directory (runner.py):

* ``table.md`` / ``table.csv``: the paper's Tables 1-2 shape: rows are methods, columns
  NATURAL, SPECIALIZED, STRUCTURED and ALL, each the mean over the group's tasks of the
  per-task median test accuracy, with its percentile-bootstrap interval (stats.py);
* ``per_task.md`` / ``per_task.csv``: each task's pick and accuracy per method;
* ``timing.csv``: per task, the selection cost of each method against the fine-tuning
  time of its pick, and their ratio (the paper's speed-up argument, section 6.6);
* ``knn_heatmap.png``: kNN accuracy of every expert on every task;
* ``proxy_vs_finetune.png``: kNN score against fine-tuned accuracy of every expert that
  was fine-tuned on a task, with Kendall's tau per task (tau needs at least two
  fine-tuned experts; the oracle fine-tunes them all);
* ``summary.md``: all of the above in one page;
* ``results.json``: every number behind them: per task and method the pick, the test
  accuracies and their median, the selection and fine-tuning seconds, every expert's
  kNN score and fine-tuned accuracy; the group table with intervals; totals.

The report goes to ``config.report.dir`` if set, else ``<workdir>/report``. It can be
regenerated at any time: ``python -m vtab_eval.main --report_only ...``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vtab_eval import files, run_dir, selection, stats

GROUPS = ("natural", "specialized", "structured", stats.ALL)
# Every selector's table row, in the paper's order (the registry's).
METHOD_NAMES = {name: cls.display_name for name, cls in selection.SELECTORS.items()}


def load_results(workdir: Path) -> list[dict]:
    """Every finished task's result, each with its directory under "dir"."""
    return run_dir.RunDir(workdir).results()


def short_task(spec: str) -> str:
    """`mini_dsprites(predicted_attribute="label_x_position",num_classes=16)` ->
    `mini_dsprites/x_position`: the name plus the first argument's value."""
    name, _, args = spec.partition("(")
    if not args:
        return name
    first = args.rstrip(")").split(",")[0].split("=")[-1].strip("\"'")
    return f"{name}/{first.removeprefix('label_')}"


def paper_order(methods) -> list[str]:
    """The given method names in the paper's row order, unknown ones last, sorted."""
    present = set(methods)
    return [m for m in METHOD_NAMES if m in present] + sorted(present - set(METHOD_NAMES))


def method_order(results: list[dict]) -> list[str]:
    return paper_order(m for r in results for m in r["methods"])


def group_table(results: list[dict], num_samples: int, level: float, seed: int = 0) -> dict:
    """{method: {group: {"mean", "low", "high", "tasks"}}} in accuracy percent."""
    table = {}
    for method in method_order(results):
        rows = [r for r in results if method in r["methods"]]
        runs = {r["task"]: r["methods"][method]["test_accuracies"] for r in rows}
        groups = {r["task"]: r["group"] for r in rows}
        intervals = stats.group_intervals(
            runs, groups, num_samples=num_samples, level=level, seed=seed
        )
        table[method] = {
            g: {k: (100 * v if k != "tasks" else v) for k, v in cell.items()}
            for g, cell in intervals.items()
        }
    return table


def _cell(cell: dict | None) -> str:
    if cell is None:
        return "-"
    return f"{cell['mean']:.1f} [{cell['low']:.1f}–{cell['high']:.1f}]"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_text(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def knn_scores(results: list[dict]) -> dict[str, dict[str, float]]:
    """{task: {expert: kNN LOO accuracy}} from the runs' knn selection files."""
    out = {}
    for r in results:
        record = run_dir.TaskDir(Path(r["dir"])).selection("knn")
        if record is not None:
            out[r["task"]] = {e: s for e, s in record["scores"].items() if s is not None}
    return out


def finetuned(results: list[dict]) -> dict[str, dict[str, float]]:
    """{task: {expert: median test accuracy}} of every expert fine-tuned on a task."""
    out = {}
    for r in results:
        out[r["task"]] = {
            record["expert"]: record["median_test_accuracy"]
            for record in run_dir.TaskDir(Path(r["dir"])).finetune_records()
        }
    return out


def timing_rows(results: list[dict], num_experts: dict[str, int]) -> list[list]:
    rows = []
    for r in results:
        for method, m in r["methods"].items():
            sel, ft = m["selection_seconds"], m["finetune_seconds"]
            # baseline and random pick without looking at the task: nothing to compare.
            cheap = method in ("baseline", "random")
            ratio = ft / sel if sel > 0 and not cheap else math.inf
            rows.append(
                [short_task(r["task"]), method, num_experts.get(r["task"], 0), f"{sel:.2f}",
                 f"{ft:.2f}", f"{ratio:.1f}" if math.isfinite(ratio) else "n/a"]
            )  # fmt: skip
    return rows


def plot_heatmap(scores: dict[str, dict[str, float]], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not scores:
        return None
    task_names = list(scores)
    experts = sorted({e for s in scores.values() for e in s})
    grid = np.array([[scores[t].get(e, np.nan) for t in task_names] for e in experts])
    # Per task relative to the baseline, on a diverging scale around zero: one absolute
    # scale over tasks of 20% and 90% accuracy hides every difference within a task.
    base = [e for e in experts if e.endswith("/baseline")]
    if base:  # in points, as the cells print them
        grid = 100 * (grid - grid[experts.index(base[0])][None, :])
    limit = max(1.0, float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(task_names), 1.5 + 0.28 * len(experts)))
    cmap = "RdBu" if base else "viridis"
    vmin, vmax = (-limit, limit) if base else (None, None)
    image = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(
        range(len(task_names)),
        [short_task(t) for t in task_names],
        rotation=60,
        ha="right",
        fontsize=7,
    )
    ax.set_yticks(range(len(experts)), experts, fontsize=6)
    if grid.size <= 600:
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                text = f"{v:+.0f}" if base else f"{100 * v:.0f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=5)
    label = "kNN accuracy minus B's (points)" if base else "kNN leave-one-out accuracy"
    fig.colorbar(image, ax=ax, label=label)
    ax.set_title("kNN proxy accuracy per expert and task")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    return files.write_bytes(path, buffer.getvalue())


def proxy_correlations(knn: dict, tuned: dict) -> dict[str, dict]:
    """{task: {"tau", "points": [(expert, knn, finetuned)]}} over the fine-tuned experts."""
    out = {}
    for task, accs in tuned.items():
        points = [(e, knn[task][e], a) for e, a in accs.items() if e in knn.get(task, {})]
        tau = stats.kendall_tau([p[1] for p in points], [p[2] for p in points])
        out[task] = {"tau": tau, "points": points}
    return out


def plot_scatter(correlations: dict[str, dict], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(c["points"] for c in correlations.values()):
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for task, c in correlations.items():
        if not c["points"]:
            continue
        tau = "n/a" if math.isnan(c["tau"]) else f"{c['tau']:+.2f}"
        xs, ys = [p[1] for p in c["points"]], [p[2] for p in c["points"]]
        ax.scatter(xs, ys, s=18, label=f"{short_task(task)} (τ {tau}, n={len(xs)})")
    ax.set_xlabel("kNN leave-one-out accuracy (proxy)")
    ax.set_ylabel("fine-tuned test accuracy (median of runs)")
    ax.set_title("Proxy score against fine-tuned accuracy, Kendall's τ per task")
    ax.legend(fontsize=6, loc="best")
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    return files.write_bytes(path, buffer.getvalue())


def method_totals(results: list[dict]) -> dict[str, dict[str, float]]:
    """{method: {"selection_seconds", "finetune_seconds"}} summed over the tasks."""
    return {
        m: {
            key: sum(r["methods"][m][key] for r in results if m in r["methods"])
            for key in ("selection_seconds", "finetune_seconds")
        }
        for m in method_order(results)
    }


def results_record(results, table, knn, tuned, config) -> dict:
    """Everything the tables and plots show, as one JSON-ready dict."""
    tasks = []
    for r in results:
        tasks.append(
            {
                "task": r["task"],
                "short": short_task(r["task"]),
                "group": r["group"],
                "num_classes": r["num_classes"],
                "methods": r["methods"],
                "knn_scores": knn.get(r["task"], {}),
                "finetuned_accuracy": tuned.get(r["task"], {}),
            }
        )
    methods = method_order(results)
    return {
        "preset": config.preset,
        "image_size": config.image_size,
        "confidence": config.report.confidence,
        "table": {m: table[m] for m in methods},
        "totals": method_totals(results),
        "tasks": tasks,
    }


PROBES_DIR = "probes"  # the probe matrix, under the report directory


def report_dir(workdir, config) -> Path:
    """Where a run's report goes: `config.report.dir`, or `<workdir>/report`."""
    return Path(config.report.get("dir") or run_dir.RunDir(workdir).default_report)


def probe_section(path: str) -> list[str]:
    """The specialisation benchmark's summary line (``vtab_eval.bench.probes``), when
    the run names its ``probes.json``."""
    if not path:
        return []
    if not Path(path).exists():
        return [
            "## Specialisation probes",
            "",
            f"Missing: {path} (run vtab_eval.bench.probes).",
            "",
        ]
    record = files.read_json(path)
    return ["## Specialisation probes", "", record["summary_line"], "", f"Details: {path}.", ""]


def write_report(workdir, config, methods: Sequence[str] | None = None) -> dict[str, str]:
    """Writes the report under `config.report.dir` (default `<workdir>/report`) on the
    given methods (default: every method any task has; a work directory shared by runs
    with different selectors holds more); returns the paths written."""
    workdir = Path(workdir)
    out = report_dir(workdir, config)
    results = load_results(workdir)
    if methods is not None:
        for r in results:
            r["methods"] = {m: v for m, v in r["methods"].items() if m in methods}
    if not results:
        raise FileNotFoundError(f"{workdir}/tasks: no finished task to report on")
    methods = method_order(results)
    table = group_table(
        results, config.report.bootstrap_samples, config.report.confidence, config.seed
    )
    level = f"{100 * config.report.confidence:.0f}%"
    header = ["Method", "NATURAL", "SPECIALIZED", "STRUCTURED", "ALL"]
    rows = [[METHOD_NAMES.get(m, m)] + [_cell(table[m].get(g)) for g in GROUPS] for m in methods]
    md_table = markdown_table(header, rows)
    files.write_text(out / "table.md", md_table)
    csv_rows = [
        [m, g, f"{c['mean']:.2f}", f"{c['low']:.2f}", f"{c['high']:.2f}", c["tasks"]]
        for m in methods for g, c in table[m].items()
    ]  # fmt: skip
    files.write_text(
        out / "table.csv", csv_text(["method", "group", "mean", "low", "high", "tasks"], csv_rows)
    )

    task_header = ["task", "group"] + [f"{m} {k}" for m in methods for k in ("pick", "accuracy")]
    task_rows = []
    for r in results:
        row = [short_task(r["task"]), r["group"]]
        for m in methods:
            cell = r["methods"].get(m)
            row += (
                [cell["pick"], f"{100 * cell['median_test_accuracy']:.1f}"] if cell else ["-", "-"]
            )
        task_rows.append(row)
    files.write_text(out / "per_task.md", markdown_table(task_header, task_rows))
    files.write_text(out / "per_task.csv", csv_text(task_header, task_rows))

    knn = knn_scores(results)
    num_experts = {t: len(s) for t, s in knn.items()}
    timing_header = ["task", "method", "experts_scored", "selection_s", "finetune_s", "ratio"]
    timing = timing_rows(results, num_experts)
    files.write_text(out / "timing.csv", csv_text(timing_header, timing))

    tuned = finetuned(results)
    correlations = proxy_correlations(knn, tuned)
    paths = {
        "markdown": str(out / "summary.md"),
        "table": str(out / "table.md"),
        "results": str(out / "results.json"),
    }
    files.write_json(out / "results.json", results_record(results, table, knn, tuned, config))
    if config.report.plots:
        for name, made in (
            ("heatmap", plot_heatmap(knn, out / "knn_heatmap.png")),
            ("scatter", plot_scatter(correlations, out / "proxy_vs_finetune.png")),
        ):
            if made is not None:
                paths[name] = str(made)

    lines = [
        "# Expert selection and transfer",
        "",
        f"{len(results)} tasks; per task the median test accuracy over its runs; group "
        f"means with {level} percentile-bootstrap intervals "
        f"({config.report.bootstrap_samples} resamples of the runs). Preset `{config.preset}`, "
        f"{config.image_size} px.",
        "",
        md_table,
        *probe_section(
            config.report.get("probes")
            or (str(out / PROBES_DIR / "probes.json") if config.get("probes") else "")
        ),
        "## Per task",
        "",
        markdown_table(task_header, task_rows),
        "## Time: selection against fine-tuning",
        "",
    ]
    for m, totals in method_totals(results).items():
        sel, ft = totals["selection_seconds"], totals["finetune_seconds"]
        # baseline and random pick without looking at the task: no selection cost to compare.
        cheap = m in ("baseline", "random")
        ratio = f"{ft / sel:.1f}x" if sel > 0 and not cheap else "n/a (no data looked at)"
        lines.append(
            f"- {METHOD_NAMES.get(m, m)}: selection {sel:.1f}s, fine-tuning its picks {ft:.1f}s; fine-tuning / selection = {ratio}"
        )
    if "knn" in methods:
        # What the oracle would cost: fine-tuning every scored expert instead of one.
        per_task = [
            r["methods"]["knn"]["finetune_seconds"] * num_experts.get(r["task"], 0) for r in results
        ]
        sel = sum(r["methods"]["knn"]["selection_seconds"] for r in results)
        if sel > 0:
            lines.append(
                f"- Fine-tuning every expert (the oracle) would take about {sum(per_task):.0f}s, "
                f"{sum(per_task) / sel:.0f}x the kNN selection."
            )
    lines += ["", "Per task and method: `timing.csv`.", "", "## Proxy against fine-tuning", ""]
    tau_rows = [
        [short_task(t), len(c["points"]), "n/a" if math.isnan(c["tau"]) else f"{c['tau']:+.2f}"]
        for t, c in correlations.items()
    ]
    lines.append(markdown_table(["task", "experts fine-tuned", "Kendall's tau"], tau_rows))
    for name, title in (
        ("heatmap", "kNN accuracy per expert"),
        ("scatter", "kNN against fine-tuning"),
    ):
        if name in paths:
            lines += [f"![{title}]({Path(paths[name]).name})", ""]
    files.write_text(out / "summary.md", "\n".join(lines))
    return paths

"""The report of a run, from the JSON files in its work directory (runner.py):

* ``table.md`` / ``table.csv``: the paper's Tables 1-2 shape: rows are methods, columns
  NATURAL, SPECIALIZED, STRUCTURED and ALL, each the mean over the group's tasks of the
  per-task median test accuracy, with its percentile-bootstrap interval (stats.py);
* ``per_task.md`` / ``per_task.csv``: each task's pick and accuracy per method;
* ``timing.csv``: per task, the selection cost of each method against the fine-tuning
  time of its pick, and their ratio (the paper's speed-up argument, section 6.6);
* ``knn_heatmap.png``: kNN accuracy of every expert on every task, relative to B's;
* ``proxy_vs_finetune.png``: kNN score against fine-tuned accuracy of every expert that
  was fine-tuned on a task, with Kendall's tau per task (shown where at least five
  experts were fine-tuned; the oracle fine-tunes them all);
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

from vtab_eval import files, run_dir, selection
from vtab_eval.report import plots, stats

GROUPS = ("natural", "specialized", "structured", stats.ALL)
# Every selector's table row, in the paper's order (the registry's).
METHOD_NAMES = {name: cls.display_name for name, cls in selection.SELECTORS.items()}


def load_results(workdir: Path) -> list[dict]:
    """Every finished task's result, each with its directory under "dir"."""
    return run_dir.RunDir(workdir).results()


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


def looks_at_task(method: str) -> bool:
    """Whether a method's selection looks at the task (B and a random pick do not, so
    their selection has no cost to weigh against fine-tuning)."""
    selector = selection.SELECTORS.get(method)
    return selector is None or selector.looks_at_task


def timing_rows(results: list[dict], num_experts: dict[str, int]) -> list[list]:
    rows = []
    for r in results:
        for method, m in r["methods"].items():
            sel, ft = m["selection_seconds"], m["finetune_seconds"]
            ratio = ft / sel if sel > 0 and looks_at_task(method) else math.inf
            rows.append(
                [plots.short_task(r["task"]), method, num_experts.get(r["task"], 0), f"{sel:.2f}",
                 f"{ft:.2f}", f"{ratio:.1f}" if math.isfinite(ratio) else "n/a"]
            )  # fmt: skip
    return rows


def proxy_correlations(knn: dict, tuned: dict) -> dict[str, dict]:
    """{task: {"tau", "points": [(expert, knn, finetuned)]}} over the fine-tuned experts."""
    out = {}
    for task, accs in tuned.items():
        points = [(e, knn[task][e], a) for e, a in accs.items() if e in knn.get(task, {})]
        tau = float("nan")
        if len(points) >= stats.MIN_POINTS_FOR_TAU:
            tau = stats.kendall_tau([p[1] for p in points], [p[2] for p in points])
        out[task] = {"tau": tau, "points": points}
    return out


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
                "short": plots.short_task(r["task"]),
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
    table = group_table(
        results, config.report.bootstrap_samples, config.report.confidence, config.seed
    )
    md_table, per_task = _write_tables(out, results, table)
    knn, tuned = knn_scores(results), finetuned(results)
    num_experts = {t: len(s) for t, s in knn.items()}
    timing_header = ["task", "method", "experts_scored", "selection_s", "finetune_s", "ratio"]
    files.write_text(out / "timing.csv", csv_text(timing_header, timing_rows(results, num_experts)))
    correlations = proxy_correlations(knn, tuned)
    files.write_json(out / "results.json", results_record(results, table, knn, tuned, config))
    paths = {
        "markdown": str(out / "summary.md"),
        "table": str(out / "table.md"),
        "results": str(out / "results.json"),
    }
    if config.report.plots:
        for name, made in (
            ("heatmap", plots.knn_heatmap(knn, out / "knn_heatmap.png")),
            ("scatter", plots.proxy_scatter(correlations, out / "proxy_vs_finetune.png")),
        ):
            if made is not None:
                paths[name] = str(made)
    probes = config.report.get("probes") or (
        str(out / PROBES_DIR / "probes.json") if config.get("probes") else ""
    )
    lines = [
        *_intro_lines(results, config),
        md_table,
        *probe_section(probes),
        "## Per task",
        "",
        per_task,
        *_time_lines(results, num_experts),
        *_proxy_lines(correlations, paths),
    ]
    files.write_text(out / "summary.md", "\n".join(lines))
    return paths


def _write_tables(out: Path, results: list[dict], table: dict) -> tuple[str, str]:
    """Writes the group table and the per-task table (markdown and CSV); returns their
    markdown."""
    methods = method_order(results)
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
        row = [plots.short_task(r["task"]), r["group"]]
        for m in methods:
            cell = r["methods"].get(m)
            row += (
                [cell["pick"], f"{100 * cell['median_test_accuracy']:.1f}"] if cell else ["-", "-"]
            )
        task_rows.append(row)
    files.write_text(out / "per_task.md", markdown_table(task_header, task_rows))
    files.write_text(out / "per_task.csv", csv_text(task_header, task_rows))
    return md_table, markdown_table(task_header, task_rows)


def _intro_lines(results: list[dict], config) -> list[str]:
    level = f"{100 * config.report.confidence:.0f}%"
    return [
        "# Expert selection and transfer",
        "",
        f"{len(results)} tasks; per task the median test accuracy over its runs; group "
        f"means with {level} percentile-bootstrap intervals "
        f"({config.report.bootstrap_samples} resamples of the runs). Preset `{config.preset}`, "
        f"{config.image_size} px.",
        "",
    ]


def _time_lines(results: list[dict], num_experts: dict[str, int]) -> list[str]:
    """Selection against fine-tuning time per method, and what the oracle would cost."""
    lines = ["## Time: selection against fine-tuning", ""]
    for m, totals in method_totals(results).items():
        sel, ft = totals["selection_seconds"], totals["finetune_seconds"]
        ratio = f"{ft / sel:.1f}x" if sel > 0 and looks_at_task(m) else "n/a (no data looked at)"
        lines.append(
            f"- {METHOD_NAMES.get(m, m)}: selection {sel:.1f}s, fine-tuning its picks "
            f"{ft:.1f}s; fine-tuning / selection = {ratio}"
        )
    if any("knn" in r["methods"] for r in results):
        # What the oracle would cost: fine-tuning every scored expert instead of one.
        knn_runs = [r for r in results if "knn" in r["methods"]]
        every = sum(
            r["methods"]["knn"]["finetune_seconds"] * num_experts.get(r["task"], 0)
            for r in knn_runs
        )
        sel = sum(r["methods"]["knn"]["selection_seconds"] for r in knn_runs)
        if sel > 0:
            lines.append(
                f"- Fine-tuning every expert (the oracle) would take about {every:.0f}s, "
                f"{every / sel:.0f}x the kNN selection."
            )
    return [*lines, "", "Per task and method: `timing.csv`.", ""]


def _proxy_lines(correlations: dict[str, dict], paths: dict[str, str]) -> list[str]:
    """Kendall's tau per task (where enough experts were fine-tuned), and the plots."""
    lines = ["## Proxy against fine-tuning", ""]
    tau_rows = [
        [
            plots.short_task(t),
            len(c["points"]),
            "n/a" if math.isnan(c["tau"]) else f"{c['tau']:+.2f}",
        ]
        for t, c in correlations.items()
    ]
    lines.append(markdown_table(["task", "experts fine-tuned", "Kendall's tau"], tau_rows))
    lines.append(
        f"Tau is shown where at least {stats.MIN_POINTS_FOR_TAU} experts were fine-tuned "
        "on the task (the oracle fine-tunes them all): over fewer it is +-1 or nearly so."
    )
    lines.append("")
    for name, title in (
        ("heatmap", "kNN accuracy per expert, relative to B"),
        ("scatter", "kNN against fine-tuning"),
    ):
        if name in paths:
            lines += [f"![{title}]({Path(paths[name]).name})", ""]
    return lines

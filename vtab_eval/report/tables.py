"""The report of a run, from the JSON files in its work directory (runner.py):

* ``table.md`` / ``table.csv``: the paper's Tables 1-2 shape: rows are methods, columns
  NATURAL, SPECIALIZED, STRUCTURED and ALL, each the mean over the group's tasks of the
  per-task median test accuracy, with its percentile-bootstrap interval (stats.py);
* ``per_task.md`` / ``per_task.csv``: each task's pick and accuracy per method;
* ``timing.csv``: per task, the selection cost of each method against the fine-tuning
  time of its pick, and their ratio (the paper's speed-up argument, section 6.6);
* ``<proxy>_heatmap.png`` (``knn_heatmap.png``): a performance proxy's score of every
  expert on every task, relative to B's, for every proxy selector of the run;
* ``proxy_vs_finetune.png``: each proxy's score against fine-tuned accuracy of every
  expert that was fine-tuned on a task, with Kendall's tau per task (shown where at
  least five experts were fine-tuned; the oracle screens them all), and in the summary
  the median tau and weighted tau per task relation, over B and the full experts and
  over the whole pool (left out when no task has enough fine-tuned experts);
* ``ensembles.csv`` / ``ensembles.png``: ensembles of the top experts, accuracy against
  the candidates combined and cost against the single pick (report/ensembles.py);
* ``summary.md``: all of the above in one page;
* ``results.json``: every number behind them: per task and method the pick, the test
  accuracies and their median, the selection and fine-tuning seconds, every expert's
  proxy scores (``<proxy>_scores``) and fine-tuned accuracy, the oracle's screening
  accuracy and kind of every module (``screened``); the group table with intervals; totals.

The report goes to ``config.report.dir`` if set, else ``<workdir>/report``. It can be
regenerated at any time: ``python -m vtab_eval.main --config.report_only=true ...``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from vtab_eval import files, run_dir, selection
from vtab_eval.report import ensembles, plots, seed_headline, stats, tau
from vtab_eval.report import proxies as proxy_judgement
from vtab_eval.report.formats import csv_text, markdown_table

GROUPS = ("natural", "specialized", "structured", stats.ALL)


def load_results(workdir: Path) -> list[dict]:
    """Every finished task's result, each with its directory under "dir"."""
    return run_dir.RunDir(workdir).results()


def paper_order(methods) -> list[str]:
    """The given method names in the paper's row order, unknown ones last, sorted."""
    present = set(methods)
    known = selection.table_order()
    return [m for m in known if m in present] + sorted(present - set(known))


def method_name(method: str) -> str:
    """A method's row in the tables: its selector's display name (unknown ones as is)."""
    cls = selection.SELECTORS.get(method)
    return method if cls is None else cls.display_name


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
    if cell["low"] == cell["high"]:  # one run per task: the runs give no interval
        return f"{cell['mean']:.1f}"
    return f"{cell['mean']:.1f} [{cell['low']:.1f}–{cell['high']:.1f}]"


def proxies(results: list[dict]) -> list[str]:
    """The performance proxies among the methods (`is_proxy`), in table order."""
    return [
        m
        for m in method_order(results)
        if m in selection.SELECTORS and selection.SELECTORS[m].is_proxy
    ]


def proxy_scores(results: list[dict], proxy: str) -> dict[str, dict[str, float]]:
    """{task: {expert: score}} from the runs' selection files of one proxy."""
    out = {}
    for r in results:
        record = run_dir.TaskDir(Path(r["dir"])).selection(proxy)
        if record is not None:
            out[r["task"]] = {e: s for e, s in record["scores"].items() if s is not None}
    return out


def finetuned(results: list[dict]) -> dict[str, dict[str, float]]:
    """{task: {expert: median test accuracy}} of every expert fine-tuned on a task: its
    protocol's runs, else the oracle's screening runs (neither seen by any proxy)."""
    return {
        task: {e: record["median_test_accuracy"] for e, record in records.items()}
        for task, records in _tuned_records(results).items()
    }


def _tuned_records(results: list[dict]) -> dict[str, dict[str, dict]]:
    out = {}
    for r in results:
        task_dir = run_dir.TaskDir(Path(r["dir"]))
        records = {rec["expert"]: rec for rec in task_dir.finetune_records(run_dir.SCREENING)}
        records.update({rec["expert"]: rec for rec in task_dir.finetune_records()})
        out[r["task"]] = records
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


def proxy_correlations(scores: dict, tuned: dict) -> dict[str, dict]:
    """{task: {"tau", "points": [(expert, score, finetuned)]}} over the fine-tuned experts."""
    out = {}
    for task, accs in tuned.items():
        points = [(e, scores[task][e], a) for e, a in accs.items() if e in scores.get(task, {})]
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


def results_record(results, table, scores, tuned, config) -> dict:
    """Everything the tables and plots show, as one JSON-ready dict."""
    tasks = []
    for r in results:
        tasks.append(
            {
                "task": r["task"],
                "short": plots.short_task(r["task"]),
                "group": r["group"],
                "relation": r.get("relation"),
                "num_classes": r["num_classes"],
                "methods": r["methods"],
                **{f"{p}_scores": s.get(r["task"], {}) for p, s in scores.items()},
                "finetuned_accuracy": tuned.get(r["task"], {}),
                "screened": proxy_judgement.screened(r["dir"]),
            }
        )
    methods = method_order(results)
    return {
        "preset": config.preset,
        "image_size": config.image_size,
        "confidence": config.report.confidence,
        "protocol": run_dir.protocol(config),
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
    scores = {p: proxy_scores(results, p) for p in proxies(results)}
    tuned = finetuned(results)
    num_experts = {  # the experts a proxy scored
        r["task"]: len({e for s in scores.values() for e in s.get(r["task"], {})})
        for r in results
        if any(r["task"] in s for s in scores.values())
    }
    timing_header = ["task", "method", "experts_scored", "selection_s", "finetune_s", "ratio"]
    files.write_text(out / "timing.csv", csv_text(timing_header, timing_rows(results, num_experts)))
    correlations = {p: proxy_correlations(s, tuned) for p, s in scores.items()}
    files.write_json(out / "results.json", results_record(results, table, scores, tuned, config))
    paths = {
        "markdown": str(out / "summary.md"),
        "table": str(out / "table.md"),
        "results": str(out / "results.json"),
    }
    if config.report.plots:
        _write_plots(out, scores, correlations, paths)
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
        *_proxy_lines(correlations, paths, results),
        *ensembles.lines(results, out, config.report.plots, markdown_table, csv_text),
    ]
    files.write_text(out / "summary.md", "\n".join(lines))
    return paths


def _write_plots(out: Path, scores: dict, correlations: dict, paths: dict) -> None:
    """Each proxy's heatmap and one scatter of every proxy against fine-tuning; adds
    what was drawn to `paths`."""
    labels = {p: selection.SELECTORS[p].score_label for p in scores}
    made = {
        f"{p}_heatmap": plots.proxy_heatmap(s, out / f"{p}_heatmap.png", labels[p])
        for p, s in scores.items()
    }
    by_label = {labels[p]: c for p, c in correlations.items()}
    made["scatter"] = plots.proxy_scatter(by_label, out / "proxy_vs_finetune.png")
    paths.update({name: str(path) for name, path in made.items() if path is not None})


def _write_tables(out: Path, results: list[dict], table: dict) -> tuple[str, str]:
    """Writes the group table and the per-task table (markdown and CSV); returns their
    markdown."""
    methods = method_order(results)
    header = ["Method", "NATURAL", "SPECIALIZED", "STRUCTURED", "ALL"]
    rows = [[method_name(m)] + [_cell(table[m].get(g)) for g in GROUPS] for m in methods]
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
    counts = {len(m.get("test_accuracies", [])) for r in results for m in r["methods"].values()} - {
        0
    }
    if counts and max(counts) == 1:
        spread = "test accuracy of its one run, so the group means have no interval over runs"
    else:
        spread = (
            f"median test accuracy over its runs; group means with {level} "
            f"percentile-bootstrap intervals ({config.report.bootstrap_samples} resamples "
            "of the runs)"
        )
    return [
        "# Expert selection and transfer",
        "",
        f"{len(results)} tasks; per task the {spread}. Preset `{config.preset}`, "
        f"{config.image_size} px.",
        "",
        *_seed_lines(config.report.get("bench_headline", "")),
    ]


def _seed_lines(bench_headline: str) -> list[str]:
    """The run is one upstream seed; how far apart the last bench's seeds were."""
    return [seed_headline.spread_line(bench_headline), ""] if bench_headline else []


def _time_lines(results: list[dict], num_experts: dict[str, int]) -> list[str]:
    """Selection against fine-tuning time per method, and what the oracle would cost."""
    lines = ["## Time: selection against fine-tuning", ""]
    for m, totals in method_totals(results).items():
        sel, ft = totals["selection_seconds"], totals["finetune_seconds"]
        ratio = f"{ft / sel:.1f}x" if sel > 0 and looks_at_task(m) else "n/a (no data looked at)"
        lines.append(
            f"- {method_name(m)}: selection {sel:.1f}s, fine-tuning its picks "
            f"{ft:.1f}s; fine-tuning / selection = {ratio}"
        )
    for proxy in proxies(results):
        # What the oracle would cost: fine-tuning every scored expert instead of one.
        runs = [r for r in results if proxy in r["methods"]]
        every = sum(
            r["methods"][proxy]["finetune_seconds"] * num_experts.get(r["task"], 0) for r in runs
        )
        sel = sum(r["methods"][proxy]["selection_seconds"] for r in runs)
        if sel > 0:
            lines.append(
                f"- Fine-tuning every expert (the oracle) would take about {every:.0f}s, "
                f"{every / sel:.0f}x the {prose_name(proxy)} selection."
            )
    return [*lines, "", "Per task and method: `timing.csv`.", ""]


def prose_name(method: str) -> str:
    """How the report's sentences name a selector."""
    cls = selection.SELECTORS[method]
    return cls.short_name or cls.display_name


def _proxy_lines(correlations: dict[str, dict[str, dict]], paths: dict, results) -> list[str]:
    """Median tau per relation and proxy (over the tasks with enough fine-tuned experts;
    no table when there is none), and the plots; `correlations` is per proxy."""
    if not correlations:
        return []
    lines = ["## Proxy against fine-tuning", ""]
    relations = {r["task"]: r.get("relation") for r in results}
    kinds = {e: rec.get("kind") for rs in _tuned_records(results).values() for e, rec in rs.items()}
    named = {prose_name(p): c for p, c in correlations.items()}
    lines += tau.tau_lines(named, relations, kinds, markdown_table)
    names = [prose_name(p) for p in correlations]
    figures = [
        (f"{p}_heatmap", f"{selection.SELECTORS[p].score_label} per expert, relative to B")
        for p in correlations
    ]
    figures.append(("scatter", f"{' and '.join(names)} against fine-tuning"))
    for name, title in figures:
        if name in paths:
            lines += [f"![{title}]({Path(paths[name]).name})", ""]
    return lines

r"""Writes ``runs/bench/README.md`` from the benchmarks' JSON files (the last step of
``make bench``).

    python -m vtab_eval.bench.readme --bench_dir=runs/bench --workdir=runs/demo/transfer

Reads, under ``--bench_dir``:

* ``transfer/report/results.json``: the report of a ``vtab_eval.main`` run with every
  selector and the oracle, the paper's Table 1 shape; the per-(task, expert)
  fine-tuning and oracle screening files of that run's ``--workdir`` (default
  ``<bench_dir>/transfer``) give the costs;
* ``probes/probes.json`` (``vtab_eval.bench.probes``);
* ``knn_kernel.json`` (``vtab_eval.bench.knn_kernel``);
* ``feature_extraction.json`` (``hub_export.bench.feature_extraction --output``).

A missing part is reported as missing in the README, never silently left out. Every
figure is read from those files; nothing here measures anything.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from absl import app, flags

from fanout import cli
from vtab_eval import files, run_dir
from vtab_eval.bench import knn_kernel_table, quality
from vtab_eval.pool import expert_pool as pool
from vtab_eval.report import tables as report

TARGET_RELATIVE_GAIN = 3.6  # percent: the paper's VTAB headline for kNN over the baseline
TARGET_ORACLE_SHARE = 80.0  # percent of the oracle's gain kNN should reach


ORACLE_SCREENING = (
    " The oracle picks the expert with the best test accuracy in hindsight after "
    "screening every expert (`config.oracle`), and is judged on its pick's whole "
    "protocol: runs with other seeds than the screening's, the same runs as every "
    "other method picking that expert."
)


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def headline(table: dict, tasks: list[dict] | None = None) -> list[str]:
    """The two headline targets (kNN's gain over B, its share of the oracle's), from
    the ALL column; when the oracle ran on fewer tasks than kNN (given the per-task
    results), its share is computed on its tasks alone, pairing every method on the
    same tasks."""
    lines = []
    base = table.get("baseline", {}).get("all", {}).get("mean")
    knn = table.get("knn", {}).get("all", {}).get("mean")
    oracle = table.get("oracle", {}).get("all", {}).get("mean")
    if base is None or knn is None:
        return ["- kNN or baseline rows missing: no headline."]
    gain = 100 * (knn - base) / base
    met = "met" if gain >= TARGET_RELATIVE_GAIN else "NOT met"
    lines.append(
        f"- kNN over all experts: {knn:.1f} vs baseline {base:.1f} mean accuracy (ALL): "
        f"{gain:+.1f}% relative; target >= +{TARGET_RELATIVE_GAIN}% (the paper's VTAB-1k "
        f"headline): {met}."
    )
    subset = [t for t in tasks or [] if {"oracle", "baseline", "knn"} <= t["methods"].keys()]
    if oracle is not None and tasks and len(subset) < len(tasks):
        lines += _subset_oracle_line(subset, len(tasks))
    elif oracle is not None:
        if oracle > base:
            share = 100 * (knn - base) / (oracle - base)
            met = "met" if share >= TARGET_ORACLE_SHARE else "NOT met"
            lines.append(
                f"- Oracle {oracle:.1f} ({100 * (oracle - base) / base:+.1f}% relative): kNN "
                f"reaches {share:.0f}% of the oracle's gain; target >= "
                f"{TARGET_ORACLE_SHARE:.0f}%: {met}."
            )
        else:
            lines.append(f"- Oracle {oracle:.1f}: no gain over the baseline to share.")
    else:
        lines.append("- Missing: the oracle row (`make bench` runs it last), so its share too.")
    if oracle is not None:
        lines.append(
            "  (The share is negative when kNN is below the baseline, and may pass 100%: "
            "the oracle picks on screening runs and is judged on fresh ones, so its pick "
            "is not always the best on those.)"
        )
    return lines


def _subset_oracle_line(subset: list[dict], total: int) -> list[str]:
    def mean(method):
        return 100 * statistics.mean(t["methods"][method]["median_test_accuracy"] for t in subset)

    base, knn, oracle = mean("baseline"), mean("knn"), mean("oracle")
    names = ", ".join(t["short"] for t in subset)
    head = (
        f"- Oracle on {len(subset)} of {total} tasks only ({names}): there, baseline "
        f"{base:.1f}, kNN {knn:.1f}, oracle {oracle:.1f} mean accuracy"
    )
    if oracle <= base:
        return [f"{head}: no gain over the baseline to share."]
    share = 100 * (knn - base) / (oracle - base)
    met = "met" if share >= TARGET_ORACLE_SHARE else "NOT met"
    return [
        f"{head}; kNN reaches {share:.0f}% of the oracle's gain; target >= "
        f"{TARGET_ORACLE_SHARE:.0f}%: {met} on these tasks (the whole suite is not measured)."
    ]


def per_task_rows(results: dict, oracle_runs: dict[str, dict[str, dict]]) -> list[list[str]]:
    """Per task: baseline, kNN's pick, score and accuracy, the kNN score spread, the
    oracle's pick and accuracy, and where the oracle's pick ranks among kNN scores."""
    rows = []
    for task in results["tasks"]:
        methods, scores = task["methods"], task["knn_scores"]
        base = methods.get("baseline", {}).get("median_test_accuracy")
        knn = methods.get("knn", {})
        oracle = methods.get("oracle", {})
        experts = {e: s for e, s in scores.items() if not e.endswith("/baseline")}
        finite = [s for s in experts.values() if s is not None and math.isfinite(s)]
        spread = f"{100 * (max(finite) - min(finite)):.1f}" if finite else "-"
        ranked = sorted(experts, key=lambda e: -(experts[e] or -1.0))
        rank = (
            str(ranked.index(oracle["pick"]) + 1) if oracle.get("pick") in ranked else "-"
        )  # fmt: skip
        rows.append(
            [
                task["short"],
                task["group"],
                _pct(base),
                pool.short_name(knn["pick"]) if knn else "-",
                _pct(scores.get(knn.get("pick"))) if knn else "-",
                _pct(knn.get("median_test_accuracy")),
                spread,
                pool.short_name(oracle["pick"]) if oracle else "-",
                _pct(oracle.get("median_test_accuracy")),
                rank,
                str(len(oracle_runs.get(task["task"], {}))) if oracle else "-",
            ]
        )
    return rows


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def oracle_records(
    workdir: Path, tuned: dict[str, dict[str, dict]], screened: dict[str, dict[str, dict]]
) -> dict[str, dict[str, dict]]:
    """The oracle's runs per task and candidate: its screening runs, or, without
    screening, the whole-protocol runs of the experts its selection scored (others, the
    baseline unless `include_baseline`, have their runs for other methods)."""
    if screened:
        return screened
    candidates = {
        task: {e for e, s in selection["scores"].items() if s >= 0}
        for task, selection in run_dir.RunDir(workdir).selections("oracle").items()
    }
    return {
        task: {e: r for e, r in records.items() if e in candidates[task]}
        for task, records in tuned.items()
        if task in candidates
    }


def _work_seconds(record: dict) -> float:
    """A run's seconds without loading and tracing its module: that is paid once per
    module whatever the number of tasks, and kNN's selection seconds leave it out too."""
    return record["seconds"] - record.get("build_seconds", 0.0)


def cost_lines(
    results: dict, tuned: dict[str, dict[str, dict]], oracle: dict[str, dict[str, dict]],
    screened: bool = False,
) -> list[str]:  # fmt: skip
    """Selection against fine-tuning, summed over tasks, module loading left out on both
    sides: kNN's selection (feature extraction included, at its first-computation
    cost); one candidate's fine-tuning under the whole protocol (per task the median
    over the experts fine-tuned under it); the whole pool's, measured when the oracle
    ran the whole protocol, else measured for its screening and estimated for the whole
    protocol as candidates x one candidate."""
    tasks = results["tasks"]
    select = sum(t["methods"]["knn"]["selection_seconds"] for t in tasks if "knn" in t["methods"])
    one = sum(
        statistics.median(_work_seconds(r) for r in tuned[t["task"]].values())
        for t in tasks
        if tuned.get(t["task"])
    )
    if not select or not one:
        return ["- Missing kNN selections or fine-tuning records: no cost comparison."]
    lines = [
        f"- kNN selection over the pool, all {len(tasks)} tasks: {select:,.0f} s "
        "(feature extraction included, module loading not).",
        f"- Fine-tuning one candidate under the same protocol (per task the median over "
        f"the experts fine-tuned under it, summed over tasks, module loading not "
        f"included): {one:,.0f} s, {one / select:.1f}x the selection.",
    ]
    return lines + _pool_cost_lines(tasks, oracle, one, select, screened)


def _pool_cost_lines(tasks, oracle, one: float, select: float, screened: bool) -> list[str]:
    """The whole pool's fine-tuning: the oracle's, measured, and when it only screened,
    the whole protocol's estimated as candidates x one candidate."""
    lines = []
    # Only the tasks the oracle finished (an interrupted run may have left a few more),
    # against the kNN selection on the same tasks.
    done = [t for t in tasks if "oracle" in t["methods"] and oracle.get(t["task"])]
    experts = {e for t in tasks for e in t["knn_scores"] if not e.endswith("/baseline")}
    count = max((len(oracle[t["task"]]) for t in done), default=len(experts))
    records = [r for t in done for r in oracle[t["task"]].values()]
    pool = sum(map(_work_seconds, records))
    builds = sum(r.get("build_seconds", 0.0) for r in records)
    select_done = sum(
        t["methods"]["knn"]["selection_seconds"] for t in done if "knn" in t["methods"]
    )
    where = "" if len(done) == len(tasks) else f" on the {len(done)} tasks it ran"
    measured = (
        f"{pool:,.0f} s, {pool / select_done:.0f}x the kNN selection there (plus "
        f"{builds:,.0f} s loading and tracing the modules)."
        if pool and select_done
        else ""
    )
    if screened:
        repeats = {r.get("screen_repeats") for r in records}
        estimate = one * count
        lines.append(
            f"- Fine-tuning the whole pool under the whole protocol (estimated: {count} x "
            f"one candidate): {estimate:,.0f} s, {estimate / select:.0f}x the selection."
        )
        if measured:
            lines.append(
                f"- The oracle's screening of the whole pool{where} ({count} experts per task, "
                f"{'/'.join(map(str, sorted(repeats)))} final run(s) of one trial each, "
                f"on seeds of their own): {measured}"
            )
    elif measured:
        lines.append(
            f"- Fine-tuning the whole pool ({count} experts per task; the oracle){where}: "
            f"{measured}"
        )
    return lines


def table_lines(table: dict) -> list[str]:
    header = ["Method", "NATURAL", "SPECIALIZED", "STRUCTURED", "ALL"]
    rows, partial = [], False
    most = max((c.get("all", {}).get("tasks", 0) for c in table.values()), default=0)
    for method in report.paper_order(table):  # results.json's keys come back sorted
        cells = table[method]
        name = report.method_name(method)
        count = cells.get("all", {}).get("tasks", most)
        if count < most:  # A row over fewer tasks is not comparable column by column.
            name += f" ({count} of {most} tasks)"
            partial = True
        rows.append([name] + [report._cell(cells.get(g)) for g in report.GROUPS])
    lines = [report.markdown_table(header, rows)]
    if partial:
        lines.append("A row over fewer tasks averages, in every column, only its own tasks.")
    return lines


def feature_lines(data: dict | None) -> list[str]:
    """Rendered here from the JSON (vtab_eval does not import hub_export)."""
    if not data or not data.get("measurements"):
        return ["Missing: `feature_extraction.json` (run `make bench`)."]
    rows = [
        [
            e["handle"],
            str(e["image_size"]),
            str(e["batch"]),
            f"{e['bare_images_per_second']:,.0f}",
            f"{e['hub_images_per_second']:,.0f}",
            f"{e['ratio']:.3f}",
        ]
        for _, e in sorted(data["measurements"].items())
    ]
    header = ["module", "px", "batch", "bare img/s", "hub img/s", "hub / bare"]
    return [report.markdown_table(header, rows), "Target: hub / bare >= 0.9."]


def _partial_screening(screened: dict[str, dict[str, dict]]) -> bool:
    """Whether the oracle screened with part of the protocol (not a whole one each)."""
    return any(r.get("screen_repeats", 0) > 0 for rs in screened.values() for r in rs.values())


def _transfer_lines(results: dict | None, workdir: Path) -> list[str]:
    """Transfer quality and selection cost, from the bench's report and the run's files."""
    if results is None:
        return ["Missing: `transfer/report/results.json` (run `make bench`).", ""]
    tuned = run_dir.RunDir(workdir).finetune_records()
    screened = run_dir.RunDir(workdir).finetune_records(run_dir.SCREENING)
    oracle = oracle_records(workdir, tuned, screened)
    return [
        f"{len(results['tasks'])} tasks of the embedded suite; preset "
        f"`{results['preset']}`, {results['image_size']} px. Per task the median test "
        f"accuracy of its fine-tuning runs; group means with "
        f"{100 * results['confidence']:.0f}% bootstrap intervals."
        + (ORACLE_SCREENING if screened else ""),
        "",
        *table_lines(results["table"]),
        *headline(results["table"], results["tasks"]),
        "",
        "### Per task",
        "",
        "kNN score: leave-one-out 1-NN accuracy on the task's 1,000 training images; "
        "spread: best minus worst expert's kNN score; rank: where the oracle's pick "
        "stands in kNN's order; candidates: the experts the oracle screened (or "
        "fine-tuned, without screening).",
        "",
        report.markdown_table(
            [
                "task",
                "group",
                "baseline",
                "kNN pick",
                "kNN score",
                "kNN acc",
                "spread",
                "oracle pick",
                "oracle acc",
                "rank",
                "candidates",
            ],
            per_task_rows(results, oracle),
        ),
        "### Rank agreement of kNN with fine-tuning",
        "",
        *quality.tau_lines(results, oracle),
        "",
        "### Every proxy against fine-tuning",
        "",
        *quality.proxy_lines(workdir, results, screened),
        "",
        "## Selection cost",
        "",
        *cost_lines(results, tuned, oracle, _partial_screening(screened)),
        "",
        "Plots: [kNN score per expert and task](transfer/report/knn_heatmap.png), "
        "[kNN score against fine-tuned accuracy](transfer/report/proxy_vs_finetune.png); "
        "the full report: [transfer/report/summary.md](transfer/report/summary.md).",
        "",
    ]


def write(bench_dir: Path, workdir: Path | None = None) -> Path:
    """`workdir`: the transfer run's work directory (default `<bench_dir>/transfer`)."""
    workdir = workdir or bench_dir / "transfer"
    results = _load(bench_dir / "transfer" / "report" / "results.json")
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m vtab_eval.bench.readme`) from the JSON files "
        "in this directory; every figure below was measured by the commands in the "
        "Makefile's `bench` target.",
        "",
        "## Transfer quality (the paper's Table 1 shape)",
        "",
    ]
    lines += _transfer_lines(results, workdir)
    lines += ["## Specialisation probes", "", *quality.probe_lines(bench_dir), ""]
    lines += ["## kNN kernel", ""]
    kernel = _load(bench_dir / "knn_kernel.json")
    if kernel is None:
        lines += ["Missing: `knn_kernel.json` (run `make bench`).", ""]
    else:
        lines += [knn_kernel_table.to_markdown(kernel), ""]
    lines += ["## Feature extraction: hub module against the bare model", ""]
    lines += [*feature_lines(_load(bench_dir / "feature_extraction.json")), ""]
    path = bench_dir / "README.md"
    files.write_text(path, "\n".join(lines))
    return path


def define_flags() -> None:
    flags.DEFINE_string("bench_dir", "runs/bench", "Directory of the benchmarks.")
    flags.DEFINE_string(
        "workdir", "", "The transfer run's work directory; empty: <bench_dir>/transfer."
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    workdir = Path(flags.FLAGS.workdir) if flags.FLAGS.workdir else None
    print(f"wrote {write(Path(flags.FLAGS.bench_dir), workdir)}", flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.flags_parser("vtab_eval.bench.readme"))

"""The report's section on ensembles of the top experts (vtab_eval/ensembles.py):
accuracy against the number of candidates combined, and fine-tuning cost against the
single pick of the proxy that ranked them.

Per ensemble method and n = 1 .. its size, the ensemble of the top n candidates (each
task's ``by_members`` entry): group means of the per-task medians (as the main table,
without intervals) and its fine-tuning seconds summed over the tasks, next to the
proxy's own pick on the same tasks (that method's row, when the run has it: with
kNN's fallback to B its pick may differ from the top candidate, which is n = 1).
Written to ``ensembles.csv`` and ``ensembles.png`` (accuracy on ALL against
members), and as lines of ``summary.md``.
"""

from __future__ import annotations

from pathlib import Path

from vtab_eval import files, selection
from vtab_eval.report import plots, stats

GROUPS = ("natural", "specialized", "structured", stats.ALL)
HEADER = ["method", "members", *GROUPS, "tasks", "finetune_s", "cost_vs_pick"]


def ensemble_methods(results: list[dict]) -> list[str]:
    """The ensemble methods among the results' (by their trait), in table order."""
    present = {m for r in results for m in r["methods"]}
    return [m for m in selection.table_order() if m in present and selection.SELECTORS[m].combines]


def _means(per_task: dict[str, float], groups: dict[str, str]) -> dict[str, float]:
    out = {}
    for group in GROUPS:
        tasks = [t for t in per_task if group == stats.ALL or groups[t] == group]
        if tasks:
            out[group] = 100 * stats.group_mean({t: [per_task[t]] for t in tasks}, tasks)
    return out


def rows(results: list[dict], method: str) -> list[list]:
    """The single pick's row, then one row per number of members, over the tasks the
    method has (and the proxy's method too, when the run has it)."""
    runs = [r for r in results if method in r["methods"]]
    proxy = runs[0]["methods"][method]["proxy"]
    if all(proxy in r["methods"] for r in runs):
        single = {r["task"]: r["methods"][proxy] for r in runs}
        label = f"{proxy} pick"
    else:  # the run did not report the proxy's method: its top candidate alone
        single = {r["task"]: r["methods"][method]["by_members"][0] for r in runs}
        label = "top candidate"
    groups = {r["task"]: r["group"] for r in runs}
    base_seconds = sum(s["finetune_seconds"] for s in single.values())

    def row(name, members, cells: dict[str, dict]):
        accuracy = _means({t: c["median_test_accuracy"] for t, c in cells.items()}, groups)
        seconds = sum(c["finetune_seconds"] for c in cells.values())
        ratio = seconds / base_seconds if base_seconds > 0 else float("nan")
        return [name, members, *(accuracy.get(g) for g in GROUPS), len(cells), seconds, ratio]

    out = [row(label, 1, single)]
    size = min(len(r["methods"][method]["by_members"]) for r in runs)
    for n in range(1, size + 1):
        out.append(
            row(method, n, {r["task"]: r["methods"][method]["by_members"][n - 1] for r in runs})
        )
    return out


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def lines(results: list[dict], out: Path, plot: bool, markdown_table, csv_text) -> list[str]:
    """The summary's section (empty without ensembles); writes its CSV and figure
    (``markdown_table`` and ``csv_text``: the report's formats, report/formats.py)."""
    methods = ensemble_methods(results)
    if not methods:
        return []
    table = {m: rows(results, m) for m in methods}
    csv_rows = [
        [_fmt(c, 3) if isinstance(c, float) else c for c in r] for m in methods for r in table[m]
    ]
    files.write_text(out / "ensembles.csv", csv_text(HEADER, csv_rows))
    text = [
        "## Ensembles of the top experts",
        "",
        "The proxy's top n candidates of each task combined greedily on val200 (members "
        "added with replacement while the validation NLL falls; Mustafa et al. 2020); "
        "accuracy (mean of per-task medians) against n, and the fine-tuning seconds of "
        "all n against the single pick's (the heads ensemble's: its forward passes and "
        "head fits).",
        "",
    ]
    for m in methods:
        display = selection.SELECTORS[m].display_name
        body = [
            [r[0] if r[0] != m else f"{display}, top {r[1]}", *(_fmt(c) for c in r[2:6]),
             r[6], f"{r[7]:.0f}", _fmt(r[8], 2) + "x"]
            for r in table[m]
        ]  # fmt: skip
        header = [
            "Method",
            "NATURAL",
            "SPECIALIZED",
            "STRUCTURED",
            "ALL",
            "tasks",
            "fine-tuning s",
            "cost",
        ]
        text += [markdown_table(header, body), _gain_line(table[m], display), ""]
    if plot:
        path = _plot(table, out / "ensembles.png")
        if path is not None:
            text += [f"![Accuracy on ALL against members]({path.name})", ""]
    return text + ["Every number: `ensembles.csv`.", ""]


def _gain_line(table: list[list], display: str) -> str:
    single, full = table[0], table[-1]
    if single[5] is None or full[5] is None:
        return f"{display}: no task with an accuracy on ALL to compare."
    gain = f", {100 * (full[5] - single[5]) / single[5]:+.1f}% relative" if single[5] else ""
    return (
        f"{display} of {full[1]} on ALL: {full[5]:.1f} against the {single[0]}'s "
        f"{single[5]:.1f} ({full[5] - single[5]:+.1f} points{gain}), at "
        f"{_fmt(full[8], 2)}x its fine-tuning cost."
    )


def _plot(table: dict[str, list[list]], path: Path) -> Path | None:
    plt = plots.pyplot(path)
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method, body in table.items():
        points = [(r[1], r[5]) for r in body[1:] if r[5] is not None]
        ax.plot(
            *zip(*points, strict=True), marker="o", label=selection.SELECTORS[method].display_name
        )
    single = next(iter(table.values()))[0]
    if single[5] is not None:
        ax.axhline(single[5], color="grey", linestyle="--", label=single[0])
    ax.set_xlabel("top candidates combined")
    ax.set_ylabel("accuracy on ALL (%)")
    ax.legend(fontsize=7)
    return plots.save(plt, fig, path)

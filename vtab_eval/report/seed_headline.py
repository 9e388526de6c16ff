"""The headline over several upstream seeds, from each seed's transfer report.

A multi-seed bench (``make bench-seeds``) keeps one directory per upstream seed:

    <bench>/seed-<s>/upstream/   B and every expert, trained with train.seed = s
    <bench>/seed-<s>/hub/        their export
    <bench>/seed-<s>/transfer/   the transfer run (seed s), its report in report/
    <bench>/seed-<s>/seed.json   written last: the seed's step finished, its wall time

Each seed's ``transfer/report/results.json`` (report/tables.py) gives every task's test
accuracies per method. The headline (stats.py) is each method's relative gain over
the reference (B) on ALL averaged over seeds, each seed's own gain, hierarchical
bootstrap intervals, paired tests over seeds and over (seed, task) pairs, the same per
group and per declared relation, and every method against the random-expert control.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from fanout import files
from vtab_eval.report import proxies, seed_fewer, seed_proxies
from vtab_eval.report.formats import markdown_rows
from vtab_eval.report.seed_compare import compare, runs_array

SEED_DIR = re.compile(r"^seed-(\d+)$")
RESULTS = Path("transfer", "report", "results.json")
FINISHED = "seed.json"
HEADLINE = "headline"  # <workdir>/headline.md and headline.json
# The project's own multi-seed bench under the current cpu preset, committed with the
# per-seed reports it merges (docs/bench/seeds/README.md), so a fresh clone's demo can
# say how far apart seeds were.
COMMITTED_HEADLINE = (
    Path(__file__).resolve().parents[2] / "docs" / "bench" / "seeds" / "headline.json"
)
UNDECLARED = "undeclared"  # the relation of a task that declares none
GROUPS = ("natural", "specialized", "structured")
RELATIONS = ("matched", "weak", "unrelated", UNDECLARED)


@dataclasses.dataclass
class SeedRun:
    """One seed directory: finished (seed.json written), its wall time, per task
    {"group", "relation", "runs": {method: test accuracies}, "picks": {method: module}}
    (None: no results yet), and its whole results.json record."""

    seed: int
    finished: bool
    seconds: float | None
    tasks: dict[str, dict] | None
    results: dict | None = None


def load_seeds(workdir) -> list[SeedRun]:
    """Every ``seed-<s>`` directory under ``workdir``, by seed."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise FileNotFoundError(f"{workdir}: no bench directory (run make bench-seeds first)")
    out = []
    for path in sorted(workdir.iterdir()):
        match = SEED_DIR.match(path.name)
        if not match or not path.is_dir():
            continue
        done = path / FINISHED
        seconds = files.read_json(done).get("seconds") if done.exists() else None
        results = files.read_json(path / RESULTS) if (path / RESULTS).exists() else None
        tasks = _read_tasks(path / RESULTS, results) if results is not None else None
        finished = done.exists() and tasks is not None
        out.append(SeedRun(int(match.group(1)), finished, seconds, tasks, results))
    return sorted(out, key=lambda run: run.seed)


def _read_tasks(path: Path, record) -> dict[str, dict]:
    tasks = {}
    for entry in record.get("tasks", []) if isinstance(record, dict) else []:
        try:
            runs = {
                m: [float(a) for a in v["test_accuracies"]] for m, v in entry["methods"].items()
            }
            tasks[entry["task"]] = {
                "group": entry["group"],
                "relation": entry.get("relation") or UNDECLARED,
                "runs": runs,
                "picks": {m: v.get("pick") for m, v in entry["methods"].items()},
            }
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{path}: a task entry lacks {error} (task, group, methods with "
                "test_accuracies): rewrite the report with vtab_eval.main --report_only"
            ) from None
    if not tasks:
        raise ValueError(f"{path}: no tasks (a transfer report's results.json has them)")
    return tasks


def _subsets(first: SeedRun, tasks: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    """{"group": {...}, "relation": {...}}: each present subset's tasks."""
    out = {}
    for key, names in (("group", GROUPS), ("relation", RELATIONS)):
        members = {n: [t for t in tasks if first.tasks[t][key] == n] for n in names}
        out[key] = {n: ts for n, ts in members.items() if ts}
    return out


def same_protocol(seeds: Sequence[SeedRun]) -> dict | None:
    """The fine-tuning and selection settings every seed ran with (results.json's
    "protocol"; None for reports written before it was recorded); a seed that ran with
    other settings than the first is an error naming them, as a headline over two
    protocols would compare nothing."""
    first = (seeds[0].results or {}).get("protocol")
    for seed in seeds[1:]:
        other = (seed.results or {}).get("protocol")
        if other != first:
            a, b = first or {}, other or {}
            fields = [
                f for f in sorted({*a, *b}) if a.get(f, "unrecorded") != b.get(f, "unrecorded")
            ]
            raise ValueError(
                f"seed-{seed.seed}/{RESULTS}: ran with other settings than seed-"
                f"{seeds[0].seed} ({', '.join(fields)}); keep each protocol's seeds in "
                "a bench directory of its own"
            )
    return first


def headline(seeds: Sequence[SeedRun], config) -> dict:
    """Every method's comparisons (see the module docstring) over the finished seeds,
    or over the partial ones, labelled partial, while none is finished."""
    finished = [s for s in seeds if s.finished]
    partial = [s for s in seeds if s.tasks is not None and not s.finished]
    used = finished or partial
    if not used:
        raise ValueError(
            f"{config.workdir}: no seed has results yet (seed-<s>/{RESULTS}); run make bench-seeds"
        )
    protocol = same_protocol(used)
    tasks = sorted(set.intersection(*(set(s.tasks) for s in used)))
    have = lambda m: all(m in s.tasks[t]["runs"] for s in used for t in tasks)  # noqa: E731
    if not tasks or not have(config.reference):
        raise ValueError(
            f"{config.workdir}: no task has the reference {config.reference!r} in every "
            f"seed used ({', '.join(str(s.seed) for s in used)})"
        )
    every = sorted({m for s in used for t in tasks for m in s.tasks[t]["runs"]})
    wanted = [m.strip() for m in config.methods.split(",") if m.strip()] or every
    unknown = [m for m in wanted if m not in every]
    if unknown:
        raise ValueError(
            f"config.methods={config.methods!r}: no results for {', '.join(unknown)}; "
            f"the seeds have {', '.join(every)}"
        )
    methods = [m for m in wanted if m != config.reference and have(m)]
    arrays = {m: runs_array(used, tasks, m) for m in [config.reference, *methods]}
    subsets = _subsets(used[0], tasks)
    record = {
        "partial": not finished,
        "seeds_used": [s.seed for s in used],
        "seeds_finished": [s.seed for s in finished],
        "seeds_partial": {str(s.seed): len(s.tasks) for s in partial},
        "seeds_without_results": [s.seed for s in seeds if s.tasks is None],
        "seconds": {str(s.seed): s.seconds for s in seeds if s.seconds is not None},
        "protocol": protocol,
        "tasks": tasks,
        "runs": int(arrays[config.reference].shape[2]),
        "reference": config.reference,
        "control": config.control if config.control in arrays else "",
        "confidence": config.confidence,
        "bootstrap_samples": config.bootstrap_samples,
        # Methods some seed or task lacks (a selector added to some seeds only).
        "methods_incomplete": [m for m in wanted if m != config.reference and not have(m)],
        "methods": {},
    }
    for m in methods:
        record["methods"][m] = _method_record(m, arrays, tasks, subsets, record, config)
    incomplete = record["methods_incomplete"]
    record["fewer_seeds"] = seed_fewer.fewer_seeds(
        used, tasks, methods, incomplete, subsets, config
    )
    record["proxies"] = seed_proxies.judge({s.seed: s.results for s in used}, config)
    return record


def _method_record(method, arrays, tasks, subsets, record, config) -> dict:
    def sub(reference, names):
        index = [tasks.index(t) for t in names]
        return compare(arrays[method][:, index], arrays[reference][:, index], config)

    out = {"all": sub(config.reference, tasks)}
    for key, members in subsets.items():
        out[key] = {name: sub(config.reference, names) for name, names in members.items()}
    control = record["control"]
    if control and method != control:
        out["vs_control"] = {"all": sub(control, tasks)}
        for name, names in subsets["relation"].items():
            out["vs_control"][name] = sub(control, names)
    return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}%"


def _interval(pair) -> str:
    return "n/a (one seed)" if pair is None else f"[{_pct(pair[0])}, {_pct(pair[1])}]"


def _p(value: float | None, exact: bool = True) -> str:
    return "n/a" if value is None else f"{value:.3g}" + ("" if exact else " (sampled)")


def _seed_lines(record: dict) -> list[str]:
    seconds = record["seconds"]
    finished = [
        f"{s} ({seconds[str(s)]:.0f} s)" if str(s) in seconds else str(s)
        for s in record["seeds_finished"]
    ]
    lines = [f"Seeds finished: {', '.join(finished) or 'none'}."]
    if record["seeds_partial"]:
        partial = ", ".join(f"{s} ({n} tasks)" for s, n in record["seeds_partial"].items())
        lines.append(f"Seeds partial (still running or stopped): {partial}.")
    if record["seeds_without_results"]:
        lines.append(
            f"Seeds without results: {', '.join(map(str, record['seeds_without_results']))}."
        )
    if record.get("methods_incomplete"):
        missing = ", ".join(record["methods_incomplete"])
        lines.append(
            f"Not run on every task of every seed used: {missing} (in the last section, "
            "over the seeds that have them)."
        )
    return [" ".join(lines), ""]


def markdown(record: dict) -> str:
    """The headline as one markdown page."""
    level = f"{100 * record['confidence']:.0f}%"
    ref = record["reference"]
    count = len(record["seeds_used"])
    title = f"# Headline over {count} upstream seed{'s' if count > 1 else ''}"
    lines = [title + (" (PARTIAL: no seed finished)" if record["partial"] else ""), ""]
    lines += _seed_lines(record)
    lines += [
        f"{len(record['tasks'])} tasks common to the seeds used, {record['runs']} runs per "
        f"(task, module) with the same run seeds across modules. Gain: a method's mean "
        f"per-task median accuracy relative to {ref}'s, per seed, averaged over seeds. "
        f"Intervals: {level} percentile, hierarchical bootstrap ({record['bootstrap_samples']} "
        "samples) of seeds then paired runs within seed, and also of tasks (+tasks).",
        "",
        *_protocol_lines(record.get("protocol")),
        "## ALL",
        "",
    ]
    header = ["Method", "Gain", "Per seed", f"{level} (seeds, runs)", f"{level} (+tasks)",
              "t p", "sign-flip p (seeds)", "sign-flip p (seeds x tasks)"]  # fmt: skip
    rows = []
    for method, m in record["methods"].items():
        a = m["all"]
        rows.append(
            [method, _pct(a["gain"]), " ".join(_pct(g) for g in a["seed_gains"]),
             _interval(a["interval"]), _interval(a["interval_tasks"]), _p(a["paired_t_p"]),
             _p(a["sign_flip_seeds_p"], a["sign_flip_seeds_exact"]),
             _p(a["sign_flip_units_p"], a["sign_flip_units_exact"])]
        )  # fmt: skip
    lines += markdown_rows(header, rows)
    for key, title in (("group", "By group"), ("relation", "By declared relation")):
        lines += _split_lines(record, key, title, level)
    lines += _control_lines(record, level)
    lines += seed_fewer.lines(record.get("fewer_seeds", []), RELATIONS, level, _pct, _interval)
    lines += seed_proxies.lines(record.get("proxies"))
    lines += TESTS_NOTE
    return "\n".join(lines)


def _protocol_lines(protocol: dict | None) -> list[str]:
    if not protocol:
        return ["Fine-tuning settings: not recorded by these seeds' reports.", ""]
    shown = {
        f.removeprefix("finetune."): v for f, v in protocol.items() if f.startswith("finetune.")
    }
    settings = ", ".join(f"{f} {v}" for f, v in shown.items())
    return [f"Fine-tuning, the same on every seed: {settings}.", ""]


def _split_lines(record: dict, key: str, title: str, level: str) -> list[str]:
    present = {n for m in record["methods"].values() for n in m[key]}
    names = [n for n in (GROUPS if key == "group" else RELATIONS) if n in present]
    if not names:
        return []
    rows = []
    for method, m in record["methods"].items():
        cells = [m[key].get(n) for n in names]
        rows.append(
            [method]
            + [
                "-" if c is None else f"{_pct(c['gain'])} {_interval(c['interval_tasks'])}"
                for c in cells
            ]
        )
    sizes = {n: c["tasks"] for m in record["methods"].values() for n, c in m[key].items()}
    header = ["Method"] + [f"{n} ({sizes[n]})" for n in names]
    intro = f"Gain and {level} interval (+tasks) per subset; (n) its tasks."
    return [f"## {title}", "", intro, "", *markdown_rows(header, rows)]


def _control_lines(record: dict, level: str) -> list[str]:
    control = record["control"]
    rows = []
    for method, m in record["methods"].items():
        for subset, c in m.get("vs_control", {}).items():
            rows.append(
                [method, subset, _pct(c["gain"]), _interval(c["interval_tasks"]),
                 _p(c["paired_t_p"]), _p(c["sign_flip_units_p"], c["sign_flip_units_exact"])]
            )  # fmt: skip
    if not rows:
        return []
    header = ["Method", "Tasks", f"Gain over {control}", f"{level} (+tasks)", "t p",
              "sign-flip p (seeds x tasks)"]  # fmt: skip
    return [f"## Against the random-expert control ({control})", "", *markdown_rows(header, rows)]


TESTS_NOTE = [
    "## Tests",
    "",
    "- t p: a paired t-test over seeds (the per-seed gains against 0). With five seeds a "
    "Wilcoxon signed-rank test cannot go below p = 2/32 = 0.0625, so it could never "
    "reject at 5%; a seed's gain is a mean over a dozen tasks, close to normal, which is "
    "what the t-test assumes.",
    "- sign-flip p (seeds): the exact sign-flip permutation test on the per-seed gains "
    "(every sign pattern), free of that assumption; with 5 seeds its floor is 0.0625 too.",
    "- sign-flip p (seeds x tasks): the same test on every (seed, task)'s difference in "
    "median accuracy, exact up to 16 pairs and sampled beyond (p = (k+1)/(n+1)); it treats "
    "tasks within a seed as exchangeable units, as the +tasks interval does.",
    "",
]


def spread_line(path, committed=COMMITTED_HEADLINE) -> str:
    """What the demo's report says about seeds: it is one, and how far apart the last
    bench's seeds were (its ``headline.json`` at ``path``; where the user has run no
    bench, the project's ``committed`` one), or that there is no bench."""
    path = Path(path) if path else None
    if (path is None or not path.exists()) and committed is not None and Path(committed).exists():
        path = Path(committed)
    if path is None or not path.exists():
        where = f" ({path})" if path else ""
        return (
            "One upstream seed: how much the gain varies between upstream trainings is not "
            f"measured here, and no multi-seed bench has been run yet{where} "
            "(make bench-seeds)."
        )
    record = files.read_json(path)
    partial = " (partial)" if record.get("partial") else ""
    if len(record.get("seeds_used", [])) < 2:
        return (
            f"One upstream seed. The last multi-seed bench{partial} ({path}) has one seed so "
            "far, so how far apart upstream seeds are is not measured yet."
        )
    parts = []
    for method, m in record.get("methods", {}).items():
        a = m["all"]
        parts.append(
            f"{method} {_pct(min(a['seed_gains']))} to {_pct(max(a['seed_gains']))} "
            f"(spread {100 * a['spread']:.1f} points)"
        )
    return (
        f"One upstream seed. In the last multi-seed bench{partial} ({path}, "
        f"{len(record.get('seeds_used', []))} seeds), the relative gain over "
        f"{record.get('reference', 'B')} on ALL ranged between seeds: "
        + ("; ".join(parts) or "no method")
        + "."
        + _settings_clause(record.get("protocol"))
    )


def _settings_clause(protocol: dict | None) -> str:
    if not protocol:
        return " Its fine-tuning settings are not recorded."
    epochs, steps = protocol.get("finetune.epochs"), protocol.get("finetune.steps")
    length = f"epochs {epochs}" if epochs else f"steps {steps}"
    return (
        f" It fine-tuned with learning rates {protocol.get('finetune.learning_rates')}, {length}."
    )


def write(workdir, config) -> dict[str, str]:
    """Reads the seeds under ``workdir``, writes the headline there; returns its paths."""
    record = headline(load_seeds(workdir), config)
    workdir = Path(workdir)
    files.write_json(workdir / f"{HEADLINE}.json", record)
    files.write_text(workdir / f"{HEADLINE}.md", markdown(record))
    if record["proxies"]:
        rows, path = record["proxies"]["rows"], workdir / "proxies_tau_cost.png"
        proxies.tau_against_cost(rows, path, subset=seed_proxies.WHOLE_POOL)
    return {"markdown": str(workdir / f"{HEADLINE}.md"), "json": str(workdir / f"{HEADLINE}.json")}

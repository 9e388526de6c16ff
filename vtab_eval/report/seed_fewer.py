"""Methods a multi-seed bench ran on some of its seeds only.

The oracle fine-tunes every module on every task, the bench's largest cost, so it may
run on a few seeds (``make bench-seed-oracle``), and the proxies' picks with it. The
headline proper is over the methods every seed has; these come in their own section,
one table per set of seeds: every method's gain over B over exactly those seeds (the
methods every seed has among them, so they compare on the same ground), per declared
relation, and, where the oracle is among them, the share of the oracle's gain each
method reaches and how often it picked the oracle's module.

The oracle picks on screening runs with seeds of their own and is reported on its
pick's protocol runs, like every other method, so its row has no selection bias.
"""

from __future__ import annotations

from collections.abc import Sequence

from vtab_eval.report.formats import markdown_rows
from vtab_eval.report.seed_compare import compare, runs_array

SEPARATOR = "+"  # between the members of an ensemble's pick


def seed_sets(used: Sequence, tasks: Sequence[str], incomplete: Sequence[str]) -> dict:
    """{seeds (a tuple): [methods]}: each method some seed lacks, under the seeds that
    have it on every task (a method no seed has on every task is under ())."""
    out: dict[tuple[int, ...], list[str]] = {}
    for method in incomplete:
        have = tuple(s.seed for s in used if all(method in s.tasks[t]["runs"] for t in tasks))
        out.setdefault(have, []).append(method)
    return out


def fewer_seeds(used, tasks, complete, incomplete, subsets, config) -> list[dict]:
    """One record per set of seeds (see `seed_sets`): {"seeds", "methods": {method:
    {"all", "relation": {...}, "oracle_share", "oracle_picks"}}}; a method no seed has
    on every task gets a record of its own with no seeds and no figures. When every
    seed has the oracle, one record over all of them carries the shares."""
    sets = seed_sets(used, tasks, incomplete)
    records = [{"seeds": [], "methods": {}, "dropped": sets.pop(())}] if () in sets else []
    if config.oracle in complete:
        sets.setdefault(tuple(s.seed for s in used), [])
    for seeds, methods in sets.items():
        runs = [s for s in used if s.seed in seeds]
        names = [m for m in complete if m != config.reference] + methods
        reference = runs_array(runs, tasks, config.reference)
        record = {"seeds": list(seeds), "methods": {}}
        for method in names:
            array = runs_array(runs, tasks, method)
            entry = {"all": compare(array, reference, config), "relation": {}}
            for relation, members in subsets["relation"].items():
                index = [tasks.index(t) for t in members]
                entry["relation"][relation] = compare(array[:, index], reference[:, index], config)
            record["methods"][method] = entry
        if config.oracle in record["methods"]:
            _oracle_shares(record, runs, tasks, config.oracle)
        records.append(record)
    return records


def _oracle_shares(record: dict, runs, tasks, oracle: str) -> None:
    """Adds each method's share of the oracle's gain on ALL (its mean gain over the
    oracle's; None unless the oracle's gain is positive with an interval, where there
    is one, above 0: a ratio over a gain within noise of 0 means nothing) and the
    (seed, task)s where its single pick was the oracle's (ensembles have none)."""
    a = record["methods"][oracle]["all"]
    interval = a["interval"]
    positive = a["gain"] > 0 and (interval is None or interval[0] > 0)
    for method, entry in record["methods"].items():
        entry["oracle_share"] = entry["all"]["gain"] / a["gain"] if positive else None
        same = []
        for s in runs:
            for t in tasks:
                picks = s.tasks[t]["picks"]
                mine, best = picks.get(method), picks.get(oracle)
                if mine and best and SEPARATOR not in mine:
                    same.append(mine == best)
        entry["oracle_picks"] = [int(sum(same)), len(same)]


def lines(records: list[dict], relations: Sequence[str], level: str, pct, interval) -> list[str]:
    """The section's markdown (`pct`, `interval`: the headline's number formats)."""
    if not records:
        return []
    out = [
        "## Methods run on some seeds only, and the oracle",
        "",
        "Each table is over the seeds named, with the methods every seed has beside them "
        f"on the same seeds. Gain over B on ALL with its {level} interval (seeds, runs; "
        "+tasks), and per declared relation. The oracle picks on screening runs of its "
        "own and is reported on its pick's protocol runs, so its row has no selection "
        "bias; share: a method's gain over the oracle's (only where the oracle's gain is "
        "above 0 beyond its interval); same pick: the (seed, task)s where its single pick "
        "was the oracle's module.",
        "",
    ]
    for record in records:
        if not record["seeds"]:
            out += [
                f"Run on no seed's every task, so left out: {', '.join(record['dropped'])}.",
                "",
            ]
            continue
        seeds = ", ".join(map(str, record["seeds"]))
        out += [f"**Seeds {seeds}**", "", *_table(record, relations, level, pct, interval)]
    return out


def _table(record: dict, relations: Sequence[str], level: str, pct, interval) -> list[str]:
    methods = record["methods"]
    present = [r for r in relations if any(r in m["relation"] for m in methods.values())]
    oracle = any("oracle_share" in m for m in methods.values())
    header = ["Method", "Gain", "Per seed", f"{level} (seeds, runs)", f"{level} (+tasks)"]
    header += present + (["Share of oracle's gain", "Same pick"] if oracle else [])
    rows = []
    for method, m in sorted(methods.items(), key=lambda kv: -kv[1]["all"]["gain"]):
        a, share, picks = m["all"], m.get("oracle_share"), m.get("oracle_picks")
        row = [method, pct(a["gain"]), " ".join(pct(g) for g in a["seed_gains"]),
               interval(a["interval"]), interval(a["interval_tasks"]),
               *(pct(m["relation"][r]["gain"]) if r in m["relation"] else "-" for r in present)]  # fmt: skip
        if oracle:
            row.append("-" if share is None else f"{100 * share:.0f}%")
            row.append("-" if not picks or not picks[1] else f"{picks[0]}/{picks[1]}")
        rows.append(row)
    return markdown_rows(header, rows)

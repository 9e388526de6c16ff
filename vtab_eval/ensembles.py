"""The ensemble methods of a transfer run (selection/ensemble.py): which modules a
task's ensemble combines, what they need computed first, and the method's result.

Members: the proxy ``config.ensemble_proxy`` ranks its candidates by its scores (its
own selection record, the one its method's pick comes from), best first and ties in
pool order; the top ``config.ensemble`` are the candidates of both ensembles. The
fine-tuned ensemble runs the protocol on each, keeping the runs' probabilities
(finetune/protocol.py), so a candidate that is also a method's pick shares that
pick's runs; the heads ensemble fits logistic heads on each one's cached features of
train800, val200 and test (finetune/heads.py). Both combine them greedily on val200
(finetune/ensemble.py).

A method's entry in the task's result has the fields every method has (its ``pick``
names the members of the first trial's ensemble, joined by ``+``; its selection cost
is the proxy's, its fine-tuning cost every candidate's, the chosen or not) and
``size``, ``proxy``, ``candidates``, per trial the members with their weights and
validation NLL, and ``by_members``: the ensemble of the top n candidates for n = 1 ..
size, with its test accuracies and fine-tuning cost (accuracy against members).
An entry of another size or proxy than the config's is rebuilt.
"""

from __future__ import annotations

import math

from vtab_eval import selection
from vtab_eval.finetune import ensemble, heads

HEAD_SPLITS = ("train800", "val200", "test")


def combines(name: str) -> str:
    """What the method ``name`` combines ("" for a single pick)."""
    return selection.selector_class(name).combines


def run_methods(config, selectors: list[str]) -> list[str]:
    """The run's methods: ``selectors``, plus every ensemble method when
    ``config.ensemble`` is set; a selector list naming one without it, or a ranking
    proxy that is no proxy, is a one-line error."""
    named = [n for n in selectors if combines(n)]
    if named and not config.ensemble:
        raise ValueError(
            f"--config.selectors names {', '.join(named)}, an ensemble of the top experts: "
            "set --config.ensemble=<k>, how many (>= 2)"
        )
    if not config.ensemble:
        return selectors
    proxy = config.ensemble_proxy
    if not selection.selector_class(proxy).is_proxy:
        proxies = selection.SELECTORS.where(lambda cls: cls.is_proxy)
        raise ValueError(
            f"config.ensemble_proxy={proxy!r} is no performance proxy; choose one of "
            f"{', '.join(proxies)}"
        )
    return selectors + [
        n for n in selection.SELECTORS.where(lambda c: c.combines) if n not in selectors
    ]


def _proxy(config):
    return selection.selector_class(config.ensemble_proxy).from_config(config.selection)


def check_size(config, pool) -> None:
    """Refuses an ensemble larger than the proxy's candidates, in one line."""
    if config.ensemble:
        have = len(_proxy(config).candidates(pool))
        if config.ensemble > have:
            raise ValueError(
                f"config.ensemble={config.ensemble}: more than the {have} candidates "
                f"config.ensemble_proxy={config.ensemble_proxy} ranks in this pool"
            )


def candidates(runner, task) -> list:
    """The top ``config.ensemble`` candidates of the proxy's ranking of ``task``."""
    scores = runner.select(task, runner.config.ensemble_proxy).scores
    ranked = sorted(
        _proxy(runner.config).candidates(runner.pool), key=lambda e: -scores.get(e, -math.inf)
    )
    return [runner.pool.get(e) for e in ranked[: runner.config.ensemble]]


def finetuning(runner, task) -> list:
    """The modules the run's fine-tuned ensemble needs fine-tuned on ``task``, keeping
    their probabilities (none without that method)."""
    if not any(combines(n) == "finetuned" for n in runner.selectors):
        return []
    return candidates(runner, task)


def missing_head_features(runner, todo) -> list[tuple]:
    """(module, [(task, split)]) of the heads ensemble's features not cached yet."""
    if not any(combines(n) == "heads" for n in runner.selectors):
        return []
    work: dict[str, tuple] = {}
    for task in todo:
        for module in candidates(runner, task):
            for split in HEAD_SPLITS:
                if not runner.store.cache_path(module.handle, task, split).exists():
                    work.setdefault(module.id, (module, []))[1].append((task, split))
    return list(work.values())


def is_current(entry: dict, config) -> bool:
    """Whether a result entry is an ensemble of the config's size and proxy."""
    return entry.get("size") == config.ensemble and entry.get("proxy") == config.ensemble_proxy


def entry(runner, task, name: str) -> dict:
    """The result entry of the ensemble method ``name`` on ``task`` (module docstring)."""
    members = candidates(runner, task)
    runs, seconds, details = [], [], []
    for module in members:
        if combines(name) == "finetuned":
            record = runner.tuning.finetune_expert(task, module, keep=True)  # read back
            runs.append(runner.tuning.member_runs(task, module))
            seconds.append(record["seconds"] + record.get("ensemble_seconds", 0.0))
        else:
            features = [runner.store.outputs(module.handle, task, s) for s in HEAD_SPLITS]
            member, fitted = heads.head_runs(*((f, y) for f, y, _ in features), task.num_classes)
            runs.append(member)
            seconds.append(fitted.pop("seconds") + sum(s for _, _, s in features))
            details.append({"expert": module.id, **fitted})
    ids = [m.id for m in members]
    curve = []
    for n in range(1, len(members) + 1):
        combined = ensemble.combine(runs[:n], ids[:n])
        curve.append({"members": n, "finetune_seconds": sum(seconds[:n]), **combined})
    full = curve[-1]
    proxy = runner.select(task, runner.config.ensemble_proxy)
    out = {
        "pick": "+".join(dict.fromkeys(full["trials"][0]["members"])),
        "selection_seconds": proxy.cost_seconds,
        "finetune_seconds": full["finetune_seconds"],
        "test_accuracies": full["test_accuracies"],
        "median_test_accuracy": full["median_test_accuracy"],
        "size": runner.config.ensemble,
        "proxy": runner.config.ensemble_proxy,
        "candidates": ids,
        "trials": full["trials"],
        "by_members": [{k: v for k, v in point.items() if k != "trials"} for point in curve],
    }
    if details:
        out["heads"] = details
    return out


def summary(result: dict) -> str:
    """One log line on an entry: the first trial's members by weight, the accuracy."""
    weights = sorted(result["trials"][0]["weights"].items(), key=lambda kv: -kv[1])
    members = ", ".join(f"{e} {w:.2f}" for e, w in weights)
    return f"{members}; median test {result['median_test_accuracy']:.4f}"

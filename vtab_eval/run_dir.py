"""The transfer run directory: the one owner of where `vtab_eval.main` keeps its files.

    <root>/run.json                            config and pool the directory was made with
    <root>/.lock, <root>/.lock.owner           held by the run working in it, and by whom
    <root>/features/...                        embedding cache (features.py)
    <root>/tasks/<task>/selection/<s>.json     one selector's scores, pick and seconds
    <root>/tasks/<task>/finetune/<e>.json      the protocol's runs for one expert
    <root>/tasks/<task>/finetune/<e>.npz       their class probabilities, kept for an
                                               ensemble (finetune/ensemble.py)
    <root>/tasks/<task>/oracle_screening<n>/<e>.json   the oracle's screening runs
    <root>/tasks/<task>/result.json            the task's summary: it is finished
    <root>/report/                             tables and plots (report/tables.py), by default

The runner writes it (every file atomically, through ``files``); the report and the
bench README read it through the same names. One run at a time works in a directory
(``RunDir.lock``), and ``run.json`` ties the directory to the config fields that decide
results and to its pool, once the run's inputs have been checked. Every file read back
is checked to hold what its writer writes (``read_record``): a damaged one is named,
with what to do, instead of failing later on a missing field.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

import fanout
from fanout import recorded_config
from fanout.recorded_config import flatten
from vtab_eval import files

RUN_FILE = "run.json"
RESULT_FILE = "result.json"
FINETUNE = "finetune"  # the whole protocol's runs; the oracle's screening: screen_kind(n)
# Screening runs have seeds of their own, never the protocol's (finetune/runs.py); the
# name differs from "oracle_screen<n>", which held runs on the protocol's seeds, so such
# records are never read as screening.
SCREENING = "oracle_screening*"  # every screening kind, as a pattern
LOCK_FILE = fanout.locks.LOCK_FILE

# Every leaf field of the transfer config (vtab_eval/configs/transfer.py, every preset)
# is in exactly one of these two sets (tests/vtab_eval/test_run_dir.py walks them): a
# new field must be classified before any run accepts it.
#
# Fields whose change makes earlier results in a directory incomparable: a rerun with
# another value is refused, naming the field.
RESULT_FIELDS = frozenset(
    {
        "image_size",
        "seed",
        "selection.split",
        "selection.knn_k",
        "selection.knn_float64",
        "selection.label_smoothing",
        "selection.include_baseline",
        "selection.knn_fallback_level",
        "selection.precision",
        "finetune.rule",
        "finetune.learning_rates",
        "finetune.steps",
        "finetune.epochs",
        "finetune.batch_size",
        "finetune.sweep_repeats",
        "finetune.final_repeats",
        "finetune.precision",
        "oracle.screen_repeats",  # names the screening files, not the oracle's pick
    }
)
# Fields a rerun may change: how fast or on what the run goes, where its files are, which
# tasks and selectors it adds (results accumulate, each keyed by what it is), what the
# report shows (rewritten from the results every run). The pool is compared apart, by
# its modules' ids. `strategy` is here because fine-tuning on more replicas sums the same
# gradients in another order, equal up to float rounding, as `finetune.max_classes` is;
# over a long run that may move an accuracy by an example, which is no more than the
# rounding between two machines.
SPEED_ONLY_FIELDS = frozenset(
    {
        "preset",  # its values are in the other fields
        "pool",
        "suite",
        "selectors",
        # The ensembles' size and ranking proxy: their entries record both and are
        # rebuilt when either changes; the runs they combine do not depend on them.
        "ensemble",
        "ensemble_proxy",
        "workdir",
        "data_dir",
        "probes",
        "report_only",
        "strategy",
        "tpu_address",
        "selection.batch_size",  # images per forward pass when embedding
        "finetune.max_classes",
        "finetune.tuner_cache",
        "finetune.eval_batch",
        "finetune.max_test_bytes",
        "report.bootstrap_samples",
        "report.confidence",
        "report.plots",
        "report.dir",
        "report.probes",
        "report.bench_headline",
    }
)
# Result fields added after directories were recorded without them, with the value
# those directories ran with: at that value they are left out of the record, so the
# older directories still match.
LATER_FIELDS = {
    "selection.precision": "float32",
    "finetune.precision": "float32",
    "selection.knn_fallback_level": 0.0,
}
# Result fields older records lack with no one value they ran with: such a record
# matches any value while the directory holds no result that depends on the field.
UNRECORDED_FIELDS = {"oracle.screen_repeats": "selection/oracle.json"}
# The result fields runs on different upstream seeds must share for a headline to
# compare them (report/seed_headline.py): the seed is what differs between them, and
# the oracle's screening count only names its files.
PROTOCOL_FIELDS = RESULT_FIELDS - {"seed", "oracle.screen_repeats"}


def protocol(config) -> dict:
    """The config's ``PROTOCOL_FIELDS``, JSON-ready (sequences as lists)."""
    flat = flatten(config.to_dict())
    return {field: flat[field] for field in sorted(PROTOCOL_FIELDS) if field in flat}


# How a rerun's config is checked against run.json (``fanout.recorded_config``).
FIELDS = recorded_config.Fields(
    speed_only=SPEED_ONLY_FIELDS,
    results=RESULT_FIELDS,
    later=LATER_FIELDS,
    unrecorded=frozenset(UNRECORDED_FIELDS),
)
RECOMPUTE = "delete it to recompute it"
# The config's paths on this machine, with ``~`` meaning the user's home as in a shell
# (the pool's handles are expanded where the pool is opened, pool.open_pool).
PATH_FIELDS = (
    "workdir", "data_dir", "probes", "report.dir", "report.probes", "report.bench_headline"
)  # fmt: skip


def expand_user_paths(config):
    """A copy of ``config`` with ``~`` expanded in its ``PATH_FIELDS``: a flag value in
    quotes (``--workdir='~/runs'``) reaches the program unexpanded."""
    config = config.copy_and_resolve_references()
    for field in PATH_FIELDS:
        *sections, leaf = field.split(".")
        where = config
        for section in sections:
            where = where[section]
        if isinstance(where.get(leaf), str) and where[leaf].startswith("~"):
            where[leaf] = os.path.expanduser(where[leaf])
    return config


# What each file the run reads back holds: its fields and their JSON types. A file
# that does not is named with what to do, instead of failing later on a missing key.
NUMBER = (int, float)
NUMBERS = "non-empty list of numbers"  # a kind of its own: lists are checked inside
RUN_FIELDS = {"config": dict, "pool": list}
RESULT_RECORD = {"task": str, "group": str, "num_classes": int, "methods": dict, "seconds": NUMBER}
METHOD_RECORD = {  # each entry of a result's "methods"
    "pick": str,
    "selection_seconds": NUMBER,
    "finetune_seconds": NUMBER,
    "test_accuracies": NUMBERS,
    "median_test_accuracy": NUMBER,
}
SELECTION_RECORD = {
    "selector": str,
    "task": str,
    "scores": dict,
    "pick": str,
    "seconds": NUMBER,
    "cost_seconds": NUMBER,
    "details": dict,
}
FINETUNE_RECORD = {
    "task": str,
    "expert": str,
    "test_accuracies": NUMBERS,
    "median_test_accuracy": NUMBER,
    "seconds": NUMBER,
}


def _is(value, kind) -> bool:
    if kind == NUMBERS:
        return isinstance(value, list) and bool(value) and all(_is(v, NUMBER) for v in value)
    return isinstance(value, kind) and not isinstance(value, bool)


def _problem(record, fields: dict, exact: bool = False) -> str | None:
    """What is wrong with a parsed record, or None."""
    if not isinstance(record, dict):
        return f"holds a JSON {type(record).__name__}, not an object"
    for field, kind in fields.items():
        if field not in record:
            return f"has no field {field!r}"
        if not _is(record[field], kind):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            expected = kind if kind == NUMBERS else " or ".join(k.__name__ for k in kinds)
            return f"field {field!r} is not {'an' if expected[0] in 'aeiou' else 'a'} {expected}"
    if exact and set(record) - set(fields):
        return f"has unknown fields {sorted(set(record) - set(fields))}"
    return None


def read_record(
    path: Path, fields: dict, remedy: str = RECOMPUTE, exact: bool = False, entries=None
) -> dict:
    """The JSON object in ``path``, checked to have ``fields`` (only those, when
    ``exact``), and each value of its ``entries[0]`` field to have ``entries[1]``'s;
    anything else (invalid JSON, NaN, a list, a missing field) is one error naming the
    file and ``remedy``."""
    try:
        record = files.read_json(path)
    except ValueError as e:
        raise ValueError(f"{e}; {remedy}") from None
    problem = _problem(record, fields, exact)
    if problem is None and entries is not None:
        field, schema = entries
        for name, entry in record[field].items():
            if _problem(entry, schema) is not None:
                problem = f"{field} entry {name!r} {_problem(entry, schema)}"
                break
    if problem is not None:
        raise ValueError(f"{path}: {problem}; {remedy}")
    return record


def screen_kind(runs: int | None) -> str:
    """The directory of fine-tuning records: the protocol's (None), or the oracle's
    screening with ``runs`` final runs of one trial (0: a whole protocol)."""
    if runs is None:
        return FINETUNE
    return "oracle_screening_all" if runs == 0 else f"oracle_screening{runs}"


@dataclasses.dataclass(frozen=True)
class TaskDir:
    """One task's directory."""

    path: Path

    @property
    def result_path(self) -> Path:
        return self.path / RESULT_FILE

    def result(self) -> dict | None:
        """The task's summary, or None while it is unfinished."""
        if not self.result_path.exists():
            return None
        return read_record(self.result_path, RESULT_RECORD, entries=("methods", METHOD_RECORD))

    def selection_path(self, selector: str) -> Path:
        return self.path / "selection" / f"{selector}.json"

    def selection(self, selector: str) -> dict | None:
        path = self.selection_path(selector)
        return read_record(path, SELECTION_RECORD, exact=True) if path.exists() else None

    def finetune_path(self, expert_id: str, kind: str = FINETUNE) -> Path:
        return self.path / kind / f"{files.slug(expert_id)}.json"

    def probabilities_path(self, expert_id: str) -> Path:
        """The class probabilities of the protocol's runs, kept for an ensemble."""
        return self.finetune_path(expert_id).with_suffix(".npz")

    def finetune_records(self, kind: str = FINETUNE) -> Iterator[dict]:
        """The records of one kind; ``kind`` may be a pattern (``oracle_screening*``)."""
        for path in sorted(self.path.glob(f"{kind}/*.json")):
            yield read_record(path, FINETUNE_RECORD)


@dataclasses.dataclass(frozen=True)
class RunDir:
    """A transfer run directory rooted at ``root``."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def run_file(self) -> Path:
        return self.root / RUN_FILE

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def default_report(self) -> Path:
        return self.root / "report"

    def task(self, key: str) -> TaskDir:
        """A task's directory, named by its key (``tasks.Task.key``: what the task is,
        not how a spec spelled it)."""
        return TaskDir(self.root / "tasks" / files.slug(key))

    def task_dirs(self) -> list[TaskDir]:
        tasks = self.root / "tasks"
        return [TaskDir(p) for p in sorted(tasks.iterdir()) if p.is_dir()] if tasks.is_dir() else []

    def results(self) -> list[dict]:
        """Every finished task's summary, each with its directory under "dir"."""
        out = []
        for task in self.task_dirs():
            result = task.result()
            if result is not None:
                out.append({**result, "dir": str(task.path)})
        return out

    def finetune_records(self, kind: str = FINETUNE) -> dict[str, dict[str, dict]]:
        """{task spec: {expert id: record}} of every task's fine-tuning records of one
        kind: the whole protocol's, or the oracle's screening (``screen_kind``)."""
        out: dict[str, dict[str, dict]] = {}
        for task in self.task_dirs():
            for record in task.finetune_records(kind):
                out.setdefault(record["task"], {})[record["expert"]] = record
        return out

    def selections(self, selector: str) -> dict[str, dict]:
        """{task spec: selection record} of one selector on every task it ran on."""
        out = {}
        for task in self.task_dirs():
            record = task.selection(selector)
            if record is not None:
                out[record["task"]] = record
        return out

    def lock(self):
        """Holds the directory for one run: a second run at once fails at the start,
        naming the holder, instead of silently doing all the work twice. The lock is
        the operating system's, so a killed run leaves nothing to clean up."""
        return fanout.hold(self.root, wait=False)

    def check_run(self, record: dict) -> None:
        """Refuses a run whose result fields or pool differ from those the directory was
        made with, naming the first field; reads only."""
        if not self.run_file.exists():
            return
        old = read_record(self.run_file, RUN_FIELDS, "restore it, or use a new --workdir")
        recorded = flatten(old["config"])
        for field in sorted(UNRECORDED_FIELDS):
            if field not in recorded and self._holds_results_of(field):
                raise ValueError(
                    f"{self.run_file}: this work directory was recorded without "
                    f"config.{field}, and its results depend on it; use a new --workdir"
                )
        FIELDS.check(
            old["config"],
            record["config"],
            lambda change: (
                f"{self.run_file}: this work directory was made with a different "
                f"config.{change.field} ({change.recorded!r} != {change.wanted!r}); "
                f"rerun with {change.recorded!r} or use a new --workdir"
            ),
        )
        if old["pool"] != record["pool"]:
            raise ValueError(
                f"{self.run_file}: this work directory was made with another pool; "
                "use a new --workdir"
            )

    def _holds_results_of(self, field: str) -> bool:
        return any((task.path / UNRECORDED_FIELDS[field]).exists() for task in self.task_dirs())

    def record_run(self, record: dict) -> None:
        recorded_config.write(self.run_file, record)


def run_record(config, pool_ids: list[str]) -> dict:
    """What ``run.json`` holds: the result fields of ``config`` (as plain JSON values,
    by section) and the pool's module ids."""
    config_json = json.loads(config.to_json_best_effort())
    return {
        "config": FIELDS.kept(config_json),
        "pool": list(pool_ids),
        "preset": config.get("preset"),
    }

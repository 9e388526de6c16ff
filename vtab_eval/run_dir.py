"""The transfer run directory: the one owner of where `vtab_eval.main` keeps its files.

    <root>/run.json                            config and pool the directory was made with
    <root>/.lock, <root>/.lock.owner           held by the run working in it, and by whom
    <root>/features/...                        embedding cache (features.py)
    <root>/tasks/<task>/selection/<s>.json     one selector's scores, pick and seconds
    <root>/tasks/<task>/finetune/<e>.json      the protocol's runs for one expert
    <root>/tasks/<task>/oracle_screen<n>/<e>.json   the oracle's screening runs
    <root>/tasks/<task>/result.json            the task's summary: it is finished
    <root>/report/                             tables and plots (report.py), by default

The runner writes it (every file atomically, through ``files``); the report and the
bench README read it through the same names. One run at a time works in a directory
(``RunDir.lock``), and ``run.json`` ties the directory to the config fields that decide
results and to its pool, once the run's inputs have been checked.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import fanout
from vtab_eval import files

RUN_FILE = "run.json"
RESULT_FILE = "result.json"
FINETUNE = "finetune"  # the whole protocol's runs; the oracle's screening: screen_kind(n)
SCREENING = "oracle_screen*"  # every screening kind, as a pattern
LOCK_FILE = fanout.locks.LOCK_FILE
# Config sections whose change makes earlier results in a directory incomparable ...
# (The top-level `strategy` and `tpu_address` are not among them: fine-tuning on more
# replicas sums the same gradients in another order, equal up to float rounding, as
# `finetune.max_classes` below is; over a long run that may move an accuracy by an
# example, which is no more than the rounding between two machines.)
RESULT_FIELDS = ("image_size", "seed", "selection", "finetune")
# ... except these fields, which change how fast results come, not what they are.
SPEED_FIELDS = {
    "selection": ("batch_size",),  # images per forward pass when embedding
    "finetune": ("max_classes", "tuner_cache", "eval_batch", "max_test_bytes"),
}
# Fields added after directories were recorded without them, with the value those
# directories ran with: at that value they are left out of the record, so the older
# directories still match.
LATER_FIELDS = {"selection": {"precision": "float32"}, "finetune": {"precision": "float32"}}


def screen_kind(runs: int | None) -> str:
    """The directory of fine-tuning records made with the protocol's first ``runs``
    final runs (None: the whole protocol)."""
    return FINETUNE if runs is None else f"oracle_screen{runs}"


@dataclasses.dataclass(frozen=True)
class TaskDir:
    """One task's directory."""

    path: Path

    @property
    def result_path(self) -> Path:
        return self.path / RESULT_FILE

    def result(self) -> dict | None:
        """The task's summary, or None while it is unfinished."""
        return files.read_json(self.result_path) if self.result_path.exists() else None

    def selection_path(self, selector: str) -> Path:
        return self.path / "selection" / f"{selector}.json"

    def selection(self, selector: str) -> dict | None:
        path = self.selection_path(selector)
        return files.read_json(path) if path.exists() else None

    def finetune_path(self, expert_id: str, kind: str = FINETUNE) -> Path:
        return self.path / kind / f"{files.slug(expert_id)}.json"

    def finetune_records(self, kind: str = FINETUNE) -> Iterator[dict]:
        """The records of one kind; ``kind`` may be a pattern (``oracle_screen*``)."""
        for path in sorted(self.path.glob(f"{kind}/*.json")):
            yield files.read_json(path)


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

    def task(self, spec: str) -> TaskDir:
        return TaskDir(self.root / "tasks" / files.slug(spec))

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
        made with, naming the field; reads only."""
        if not self.run_file.exists():
            return
        old = files.read_json(self.run_file)
        for field in RESULT_FIELDS:
            if old["config"].get(field) != record["config"][field]:
                raise ValueError(
                    f"{self.run_file}: this work directory was made with a different "
                    f"config.{field} ({old['config'].get(field)} != {record['config'][field]}); "
                    "use a new --workdir"
                )
        if old["pool"] != record["pool"]:
            raise ValueError(
                f"{self.run_file}: this work directory was made with another pool; "
                "use a new --workdir"
            )

    def record_run(self, record: dict) -> None:
        files.write_json(self.run_file, record)


def run_record(config, pool_ids: list[str]) -> dict:
    """What ``run.json`` holds: the result fields of ``config`` (as plain JSON values)
    and the pool's module ids."""
    plain = json.loads(config.to_json_best_effort())
    record = {"config": {f: plain[f] for f in RESULT_FIELDS}, "pool": list(pool_ids)}
    for section, fields in SPEED_FIELDS.items():
        for field in fields:
            record["config"][section].pop(field, None)
    for section, defaults in LATER_FIELDS.items():
        for field, default in defaults.items():
            if record["config"][section].get(field) == default:
                record["config"][section].pop(field)
    return {**record, "preset": config.get("preset")}

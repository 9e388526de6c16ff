"""The upstream work tree: the one owner of where training jobs keep their files.

    <root>/baseline/           B
    <root>/full/<expert>/      one directory per full expert (``dir_name`` of its node)
    <root>/adapter/            every adapter expert, trained at once
    <root>/epn/                the expert prediction network

and inside each job directory:

    config.json                the job's resolved config, written when it starts
    checkpoints/               tf.train.CheckpointManager's, for resuming
    tensorboard/
    final/model.*              the model alone              } written together, atomically:
    final/metrics.json         its evaluation               } final/ marks a finished job
    .lock, .lock.owner         held by the process training the job (``JobDir.lock``)
    .written-by                the job made the directory: a restart may empty it

Training (``experts.train``, ``training.loop``) writes it; the warm start from B
(``jobs``) and hub export read it. The recorded config is what lets a rerun refuse a
changed setting instead of mixing two runs, and lets export read each job's model,
data and batch instead of guessing them from presets.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import tensorflow as tf

import fanout
import fanout.files
from fanout import recorded_config
from fanout.recorded_config import ConfigChanged  # what a refused rerun raises

JOBS = ("baseline", "full", "adapter", "epn")
# Marks a job directory a training job made: the only kind ``JobDir.clear`` empties.
OWNER = "experts.train"
_MARKER = fanout.files.MARKER
# What a directory may hold and still count as new: the locks of whoever holds it.
_KEPT = (fanout.locks.LOCK_FILE, f"{fanout.locks.LOCK_FILE}.owner", _MARKER)
CONFIG_FILE = "config.json"
FINAL_DIR = "final"
MODEL_CHECKPOINT = "model"  # prefix of the model-only checkpoint inside final/
METRICS_FILE = "metrics.json"

# Config fields that change how fast or where a job runs, never what it learns: a
# rerun may change them. Every other field must match the recorded config.
SPEED_ONLY_FIELDS = frozenset(
    {
        "workdir",
        "baseline_workdir",
        "restart",
        "strategy",
        "tpu_address",
        "baseline_workers",
        "eval_batch",
        "data_dir",
        "data.data_dir",  # where records made before data_dir moved to the top keep it
        "data.num_experts",  # resolved into data.experts, which is compared
        "train.log_every",
        "train.checkpoint_every",
        "train.keep_checkpoints",
        "train.steps_per_call",
    }
)


# Fields added to the job configs after work trees were recorded without them, with the
# value that reproduces how those jobs ran: a record without the field reads as that.
LATER_FIELDS = {
    "train.deterministic": False,
    "train.precision": "float32",
    "train.expert_loss": "batch",
    "model.expert_head_bias": False,
    "model.adapter_scale": False,
    "model.adapter_width": 0.5,
    "train.step_boundaries": [0.3, 0.6, 0.9],
    "data.augment.crop_area": [0.6, 1.0],
    "data.augment.flip": False,
    "data.choice.rule": "recorded",
    "data.choice.num_experts": 50,
    "data.choice.min_images": 500,
    "data.choice.max_overlap": 0.8,
    "data.choice.exclude_roots": True,
}


# How a rerun's config is checked against the recorded one (``fanout.recorded_config``).
FIELDS = recorded_config.Fields(speed_only=SPEED_ONLY_FIELDS, later=LATER_FIELDS)


def dir_name(node: str) -> str:
    """A hierarchy node's directory name: one path component, never hidden, and
    distinct for distinct nodes (percent-encoding is injective), so a node called
    ``../x`` or ``a/b`` stays inside ``full/``."""
    if not node:
        raise ValueError("an expert's node name is empty")
    name = quote(node, safe=" ")
    return "%2E" + name[1:] if name.startswith(".") else name


def node_of(directory: str) -> str:
    return unquote(directory)


@dataclasses.dataclass(frozen=True)
class JobDir:
    """One job's directory."""

    path: Path

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def metrics_path(self) -> Path:
        return self.path / FINAL_DIR / METRICS_FILE

    @property
    def final_model(self) -> str:
        return str(self.path / FINAL_DIR / MODEL_CHECKPOINT)

    def finished(self) -> bool:
        return self.metrics_path.exists()

    def metrics(self) -> dict:
        return json.loads(self.metrics_path.read_text())

    def has_config(self) -> bool:
        return self.config_path.exists()

    def config(self) -> dict:
        """The recorded config (nested dicts, as written by ``start``)."""
        if not self.config_path.exists():
            raise FileNotFoundError(
                f"{self.config_path} is missing: {self.path} was not started by experts.train"
            )
        try:
            return json.loads(self.config_path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.config_path} is not valid JSON: {e}") from None

    def start(self, config: Mapping[str, Any], restart: bool = False) -> None:
        """Records ``config`` for a new job, or checks that a rerun's config matches
        the recorded one in every field that changes results. ``restart`` deletes the
        job's earlier work (checkpoints, final model, config) and starts it afresh."""
        if restart and self.path.exists():
            self.clear()
        if self.has_config():
            check_unchanged(self.config(), config, self.config_path)
        elif self.checkpoints.exists() or self.finished():
            raise ConfigChanged(
                f"{self.path} holds training without a {CONFIG_FILE}; "
                + (
                    "pass --config.restart=true to train it afresh"
                    if fanout.files.owned(self.path, OWNER)
                    else "move it away to train afresh (no job of this project made it)"
                )
            )
        else:
            # The job claims its directory only when it finds it new: a directory that
            # already held other files is never one ``clear`` may empty.
            new = not self.path.exists() or fanout.files.is_empty(self.path, _KEPT)
            recorded_config.write(self.config_path, config)
            if new:
                fanout.files.mark_owned(self.path, OWNER)

    def lock(self, log=print):
        """Holds the directory while its job runs: a second worker given the same job
        waits for the first, then finds it finished (or resumes where it stopped)."""
        return fanout.hold(self.path, wait=True, log=log)

    def clear(self) -> None:
        """Deletes the job's work, keeping the lock of whoever holds the directory;
        only in a directory a job made (``fanout.files``), else ``NotOwned``."""
        fanout.files.check_replaceable(self.path, OWNER, _KEPT)
        for entry in self.path.iterdir():
            if entry.name.startswith(fanout.locks.LOCK_FILE) or entry.name == _MARKER:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def write_final(self, model: tf.Module, metrics: dict) -> None:
        """Writes final/ through a temporary sibling and a rename, so that a final/
        directory (the "finished" marker) is never half-written."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = fanout.files.make_temp_dir(".final-", self.path)
        tf.train.Checkpoint(model=model).write(str(tmp / MODEL_CHECKPOINT))
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path / FINAL_DIR)


def check_unchanged(recorded: Mapping, config: Mapping, where: Path | str) -> None:
    """Raises ``ConfigChanged`` naming the first result-changing field that differs."""
    FIELDS.check(
        recorded,
        config,
        lambda change: (
            f"{change.field} is {change.wanted!r} but {where} records {change.recorded!r}; "
            "rerun with the recorded value, or pass --config.restart=true to train afresh"
        ),
    )


@dataclasses.dataclass(frozen=True)
class WorkTree:
    """An upstream work tree rooted at ``root``."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    def job(self, job: str, expert: str | None = None) -> JobDir:
        if job not in JOBS:
            raise ValueError(f"unknown job {job!r}; choose one of {', '.join(JOBS)}")
        if job == "full":
            if not expert:
                raise ValueError("a full expert's job directory needs the expert's node")
            return JobDir(self.root / "full" / dir_name(expert))
        return JobDir(self.root / job)

    @property
    def baseline(self) -> JobDir:
        return self.job("baseline")

    def full_experts(self) -> list[str]:
        """The nodes of every full expert started in this tree, sorted."""
        full = self.root / "full"
        if not full.is_dir():
            return []
        return sorted(node_of(d.name) for d in full.iterdir() if (d / CONFIG_FILE).exists())

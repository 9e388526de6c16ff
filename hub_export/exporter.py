"""Exports a finished upstream work tree (``experts.train``'s) to a hub tree.

    work tree (experts/work_tree.py)     hub tree (see tree.py)
    baseline/final/model          ->     bit/.../baseline, bit-classifier/.../upstream
    full/<expert>/final/model     ->     bit/.../<expert>
    adapters/final/model          ->     bit-adapter/.../<expert> (one per expert),
                                         bit-adapter-packed/.../all
    epn/final/model               ->     bit-epn/.../epn

Each checkpoint is read once into the model its job trained (``experts/jobs.py``; one
model per shape, reused from checkpoint to checkpoint) and every module it yields is
written atomically (``tree.atomic_write``). Feature-vector modules are traced once per
architecture and refilled for each expert (``modules.FeatureVectorTemplate``).
"""

from __future__ import annotations

import errno
import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

import fanout
from experts.models import resnet_v2
from fanout.worker_cache import WorkerCache
from hub_export import kinds as kinds_lib
from hub_export import metadata, modules, tree
from hub_export.trained import TrainedUpstream
from hub_export.tree import ExportError, Handle, Target


def parse_kinds(text: str | Sequence[str]) -> tuple[str, ...]:
    kinds = [k.strip() for k in text.split(",")] if isinstance(text, str) else list(text)
    kinds = list(dict.fromkeys(k for k in kinds if k))  # a kind named twice is one kind
    for kind in kinds:
        if kind not in tree.KINDS:
            raise ExportError(f"unknown module kind {kind!r}; choose from {', '.join(tree.KINDS)}")
    return tuple(kinds)


def plan(
    work: TrainedUpstream, publisher: str, version: int, kinds: Sequence[str] = ()
) -> tuple[list[Target], list[str]]:
    """The modules to export and the reasons others are skipped. With no ``kinds``,
    everything whose job has finished; a named kind whose job has not is an error."""
    slugs = tree.check_unique_slugs(list(dict.fromkeys(work.experts + work.full_experts)))
    explicit = bool(kinds)
    kinds = kinds or tuple(tree.KINDS)

    def handle(kind, node=None):
        return Handle.make(publisher, kind, work.size, work.dataset, node and slugs[node], version)

    targets, skipped = [], []
    for kind in kinds:
        planned, reasons = kinds_lib.KINDS[kind].planned(work, explicit)
        targets += [Target(handle(kind, node), node, index) for node, index in planned]
        skipped += reasons
    return targets, skipped


class Exporter:
    """Writes the planned modules with their metadata."""

    def __init__(
        self,
        work: TrainedUpstream,
        hub_root: str | Path,
        log: Callable[[str], None] = print,
        data_dir: str = "",  # where ``work`` read its data from, for jobs that reopen it
    ):
        self.work, self.root, self.log, self.data_dir = work, Path(hub_root), log, data_dir
        self._models: dict[tuple[int, int], resnet_v2.ResNetV2] = {}  # see _export
        info = work.info
        self.train_counts = np.array([info.counts("train")[lab] for lab in info.labels], float)
        self.upstream = {
            "dataset": work.dataset,
            "num_labels": len(info.labels),
            "num_nodes": len(info.hierarchy),
            "train_images": int(self.train_counts.sum()),
        }
        slugs = tree.check_unique_slugs(list(work.experts))
        self.expert_names = [slugs[node] for node in work.experts]  # EPN / packed order
        # Traced once and refilled for every feature-vector module of one architecture.
        self._templates: dict[tuple, modules.FeatureVectorTemplate] = {}
        self.kinds = {name: kind(self) for name, kind in kinds_lib.KINDS.items()}

    # -- per-kind facts ----------------------------------------------------------------

    @functools.cached_property
    def node_counts(self) -> dict[str, int]:
        # Train images per hierarchy node; computing it takes about as long as saving a
        # module (a labels x nodes product), so once per export, not once per expert.
        return self.work.info.node_counts("train")

    def template(self, model, adapter: bool) -> modules.FeatureVectorTemplate:
        key = modules.FeatureVectorTemplate.key(model, adapter=adapter)
        if key not in self._templates:
            self._templates[key] = modules.FeatureVectorTemplate(*key)
        return self._templates[key]

    def training(self, job: str, expert: str | None = None, prefix: str = "") -> dict:
        """The job's training record; metrics named ``prefix...`` without the prefix."""
        metrics = self.work.job(job, expert).metrics()
        numbers = {
            k[len(prefix) :]: v
            for k, v in metrics.items()
            if k.startswith(prefix) and isinstance(v, (int, float))
        }
        return {
            "job": job if expert is None else f"{job}/{expert}",
            "steps": self.work.steps(job, expert),
            "global_batch": self.work.global_batch(job, expert),
            "warm_start": None if job == "baseline" else "baseline",
            "metrics": numbers,
        }

    # -- writing -----------------------------------------------------------------------

    def write(
        self, target: Target, module: modules.Module, info: dict, overwrite: bool, start: float
    ) -> dict:
        """Writes one module atomically; ``start`` is when its build began (for the log)."""
        labels = info["output"].get("labels")

        def write(directory: Path) -> None:
            modules.save(module, directory)
            metadata.write_info(directory, info)
            metadata.write_card(directory, info)
            if labels:
                (directory / "labels.txt").write_text("\n".join(labels) + "\n")

        try:
            path = tree.atomic_write(self.root, target.handle.path(self.root), write, overwrite)
        except (tf.errors.ResourceExhaustedError, OSError) as e:
            if isinstance(e, OSError) and e.errno != errno.ENOSPC:
                raise
            # atomic_write left nothing of this module; the ones before are complete.
            raise ExportError(
                f"no space left on the device writing module {target.handle.relpath} into "
                f"{self.root}; free some space and export again"
            ) from None
        result = {
            "handle": target.handle.relpath,
            "path": str(path),
            "seconds": round(time.perf_counter() - start, 2),
            "size_bytes": tree.dir_size(path),
        }
        self.log(
            f"exported {result['handle']} ({result['size_bytes'] / 2**20:.1f} MiB, "
            f"{result['seconds']:.1f}s)"
        )
        return result

    def build(self, target: Target, model: resnet_v2.ResNetV2) -> tuple[modules.Module, dict]:
        """The module and its expert_info for one target, from its job's model."""
        kind = self.kinds[target.handle.kind]
        module, output, extra = kind.build(target, model)
        training, images_seen = kind.training(target)
        source = self.work.job(*kind.checkpoint(target))
        node = target.node
        try:
            info = metadata.expert_info(
                target.handle,
                node=node,
                description=self.work.info.descriptions.get(node) if node else None,
                feature_dim=model.feature_dim,
                upstream={**self.upstream, "slice_images": int(kind.slice_images(target))},
                images_seen=images_seen,
                training=training,
                image_size=self.work.image_size,
                output=output,
                provenance=metadata.provenance(source.path, source.final_model),
                label_distribution=kind.label_distribution(target),
                **extra,
            )
        except metadata.SchemaError as e:
            raise ExportError(f"{target.handle.path(self.root) / tree.INFO_FILE}: {e}") from None
        return module, info

    def export(
        self,
        targets: Sequence[Target],
        overwrite: bool = False,
        skip_existing: bool = False,
        executor: fanout.Executor | None = None,
    ) -> list[dict]:
        """Exports ``targets``. An existing module exported from the same checkpoint,
        after it was last written, is kept (so a rerun after an interruption exports
        what is missing); any other existing module is an error unless ``overwrite``
        (replace it) or ``skip_existing`` (keep whatever is there). With an executor
        that is not in-process (Ray), each module is a job; this process holds the hub
        root's export lock meanwhile."""
        if overwrite and skip_existing:
            raise ExportError("overwrite and skip_existing exclude each other")
        with tree.export_lock(self.root):
            for line in tree.clean_incoming(self.root):
                self.log(line)
            todo = self._to_write(targets, overwrite, skip_existing)
            if executor is None or executor.in_process:
                return self._export(todo, overwrite)
            where = (str(self.work.workdir.resolve()), self.data_dir, str(self.root.resolve()))
            jobs = [fanout.Job(t.handle.relpath, export_one, (*where, t, overwrite)) for t in todo]
            return executor.map(jobs, what="export")

    def _to_write(self, targets, overwrite: bool, skip_existing: bool) -> list[Target]:
        """The targets left to write; fails before any work if an existing module would
        be replaced without ``overwrite``."""
        todo, conflicts = [], []
        for t in targets:
            path = t.handle.path(self.root)
            tree.inside_root(self.root, path)
            if overwrite:
                tree.check_replaceable(path)
            state = self._existing(t) if path.exists() and not overwrite else None
            if state is None:
                todo.append(t)
            elif state == "current" or skip_existing:
                self.log(f"keeping existing {path}")
            else:
                conflicts.append(f"{path} {state}")
        if conflicts:
            raise ExportError(
                f"{conflicts[0]} ({len(conflicts)} of {len(targets)} modules are); pass "
                "--config.overwrite=true to replace them or --config.skip_existing=true "
                "to keep them"
            )
        return todo

    def _existing(self, target: Target) -> str:
        """ "current" when the module on disk was exported from the target's checkpoint
        after that checkpoint was written, else how it differs."""
        path = target.handle.path(self.root)
        source = self.work.job(*self.kinds[target.handle.kind].checkpoint(target))
        try:
            info = json.loads((path / tree.INFO_FILE).read_text())
            recorded = info["provenance"]["checkpoint"]
        except (OSError, ValueError, KeyError, TypeError):
            return f"exists without a readable {tree.INFO_FILE}"
        if recorded != str(Path(source.final_model).resolve()):
            return f"exists, exported from another checkpoint ({recorded})"
        if (path / tree.INFO_FILE).stat().st_mtime < source.metrics_path.stat().st_mtime:
            return "exists, exported before its checkpoint was trained again"
        return "current"

    def _export(self, targets: Sequence[Target], overwrite: bool) -> list[dict]:
        # Each checkpoint is read once, for every module that comes from it.
        by_checkpoint: dict[tuple[str, str | None], list[Target]] = {}
        for t in targets:
            by_checkpoint.setdefault(self.kinds[t.handle.kind].checkpoint(t), []).append(t)
        results = []
        # One model per shape, into which each checkpoint of that shape is read in turn
        # (B and the full experts share one): building a model costs more than reading.
        models = self._models
        for (job, node), group in by_checkpoint.items():
            shape = self.kinds[group[0].handle.kind].model_shape(self.work)
            models[shape] = self.work.restore(*shape, job, node, into=models.get(shape))
            for t in group:
                start = time.perf_counter()
                module, info = self.build(t, models[shape])
                results.append(self.write(t, module, info, overwrite, start))
        return results


# A Ray worker's Exporter (the opened tree, and the models checkpoints are read into),
# kept between its modules of one (tree, hub root).
_WORKER_EXPORTER = WorkerCache("hub_export.exporter")


def export_one(workdir: str, data_dir: str, hub_root: str, target: Target, overwrite: bool):
    """One module, as a Ray worker exports it: from nothing but paths and its target."""
    exporter = _WORKER_EXPORTER.get(
        (workdir, data_dir, hub_root),
        lambda: Exporter(TrainedUpstream.open(workdir, data_dir), hub_root),
    )
    return exporter._export([target], overwrite)[0]


def export(
    config, log: Callable[[str], None] = print, executor: fanout.Executor | None = None
) -> list[dict]:
    """Exports what ``config`` (hub_export/config.py) names; returns one result per module."""
    if not str(config.hub_root).strip():  # Path("") is the working directory
        raise ExportError("--config.hub_root is empty; name the directory the hub tree goes in")
    work = TrainedUpstream.open(config.workdir, config.data_dir)
    targets, skipped = plan(work, config.publisher, config.version, parse_kinds(config.kinds))
    for reason in skipped:
        log(f"skipping {reason}")
    if not targets:
        raise ExportError(f"nothing to export from {work.workdir}: no finished training job")
    skip_existing = bool(config.get("skip_existing", False))
    exporter = Exporter(work, config.hub_root, log, data_dir=config.data_dir)
    return exporter.export(targets, config.overwrite, skip_existing, executor)

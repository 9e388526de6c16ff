"""A finished upstream work tree (``experts.train``'s), as the exporter reads it: the
jobs' records and the models their checkpoints rebuild."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tensorflow as tf

from experts import work_tree
from experts.data import pipelines
from experts.data.upstream import UpstreamInfo
from experts.models import resnet_v2
from experts.models.adapters import PAPER_WIDTH
from hub_export.tree import ExportError


@dataclasses.dataclass
class TrainedUpstream:
    """A trained upstream work tree and what is needed to rebuild its models, as its
    jobs recorded it (``experts.work_tree``)."""

    workdir: Path
    dataset: str  # tfds name
    info: UpstreamInfo
    experts: tuple[str, ...]  # hierarchy nodes, in the adapters' and EPN's index order
    size: str
    image_size: int
    # Every full expert trained in the tree; empty: ``experts``.
    full_experts: tuple[str, ...] = ()

    @classmethod
    def open(cls, workdir: str | Path, data_dir: str = "") -> TrainedUpstream:
        """The tree at ``workdir``; its data is read from ``data_dir``, or else from
        where B was trained."""
        tree = work_tree.WorkTree(workdir)
        if not tree.root.is_dir():
            raise ExportError(f"work tree {tree.root} does not exist (set --workdir)")
        try:
            base = tree.baseline.config()
        except (FileNotFoundError, ValueError) as e:
            raise ExportError(str(e)) from None
        name = base["data"]["name"]
        # Records made before data_dir moved to the config's top level keep it in data.
        recorded_dir = base.get("data_dir", base["data"].get("data_dir"))
        _, info = pipelines.open_upstream(name, data_dir or recorded_dir or None)
        model = base["model"]
        experts = _recorded_experts(tree)
        full = experts + tuple(e for e in tree.full_experts() if e not in experts)
        return cls(tree.root, name, info, experts or full, model["size"], model["image_size"], full)

    def job_dir(self, job: str, expert: str | None = None) -> Path:
        return self.job(job, expert).path

    def job(self, job: str, expert: str | None = None) -> work_tree.JobDir:
        return work_tree.WorkTree(self.workdir).job(job, expert)

    def finished(self, job: str, expert: str | None = None) -> bool:
        return self.job(job, expert).finished()

    def steps(self, job: str, expert: str | None = None) -> int:
        return int(self.job(job, expert).metrics()["steps"])

    def global_batch(self, job: str, expert: str | None = None) -> int:
        return int(self.job(job, expert).config()["train"]["global_batch"])

    def images(self, job: str, expert: str | None = None) -> int:
        """Images this job trained on (steps x its recorded global batch)."""
        return self.steps(job, expert) * self.global_batch(job, expert)

    def restore(self, num_classes: int, num_experts: int, job: str, expert=None, into=None):
        """The job's final model, read from its checkpoint (every variable must match).
        ``into``: a model of this shape from an earlier ``restore`` to read it into
        (every variable is overwritten) instead of building a new one."""
        where = self.job(job, expert)
        if not where.finished():
            raise ExportError(f"{where.path} has no finished run (no {where.metrics_path.name})")
        shape = (self.size, num_classes, num_experts)
        # A head bias per adapter expert (it adds no feature) and an output scale per
        # adapter, when the job trained them, and the adapters' bottleneck width.
        recorded = where.config()["model"]
        extras = {
            field: bool(num_experts and recorded.get(field, False))
            for field in ("expert_head_bias", "adapter_scale")
        }
        extras["adapter_width"] = float(recorded.get("adapter_width", PAPER_WIDTH))
        if into is None:
            # float32 whatever precision the job trained in (variables are float32 in
            # every precision): modules compute in float32 (modules.py).
            into = resnet_v2.ResNetV2(*shape, **extras, dtype="float32").build_for(self.image_size)
        elif (into.size_name, into.num_classes, into.num_experts) != shape or any(
            getattr(into, field) != value for field, value in extras.items()
        ):
            raise ValueError(f"cannot restore a {shape} model into {into.get_config()}")
        model = into
        checkpoint = where.final_model
        try:
            tf.train.Checkpoint(model=model).read(checkpoint).assert_consumed()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ExportError(
                f"{checkpoint} does not fit a {self.size} model with {num_classes} outputs and "
                f"{num_experts} adapter experts (its job recorded another model.size?): {first}"
            ) from None
        return model


def _recorded_experts(tree: work_tree.WorkTree) -> tuple[str, ...]:
    """The experts in the adapters' and EPN's index order (which must agree)."""
    orders = {
        job: tuple(tree.job(job).config()["data"]["experts"])
        for job in ("adapter", "epn")
        if tree.job(job).has_config()
    }
    if len(set(orders.values())) > 1:
        raise ExportError(
            f"the adapters and the EPN in {tree.root} were trained on different experts "
            f"({', '.join(orders['adapter'])} / {', '.join(orders['epn'])})"
        )
    return next(iter(orders.values()), ())

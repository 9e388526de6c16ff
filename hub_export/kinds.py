"""One class per module kind: which job's checkpoint it comes from, which modules it
yields, how they are built, and the training facts their ``expert_info.json`` records.
The exporter (exporter.py) runs them all the same way; a new kind is one class here,
registered with ``@register`` (``tree.KINDS``), which also says where its modules go in
the hub tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from hub_export import tree
from hub_export.tree import ExportError, Target

# `metadata` and `modules` (TensorFlow) are imported where a module is built: the
# package imports this file so that its kinds are registered, and the tree and the
# catalog read their places without TensorFlow.
if TYPE_CHECKING:
    from hub_export import modules
    from hub_export.trained import TrainedUpstream


class ExportContext(Protocol):
    """What a kind reads from the export it is part of. The exporter provides it; kinds
    see nothing else of the exporter, so it imports them and never the reverse."""

    work: TrainedUpstream
    upstream: dict  # the upstream's facts every module's expert_info records
    train_counts: np.ndarray  # train images per upstream label, in label-id order
    expert_names: list[str]  # the experts' module names, in the adapters' and EPN's order

    @property
    def node_counts(self) -> dict[str, int]: ...  # train images per hierarchy node

    def training(self, job: str, expert: str | None = None, prefix: str = "") -> dict: ...

    def template(self, model, adapter: bool) -> modules.FeatureVectorTemplate: ...


register = tree.KINDS.register


class ModuleKind:
    """A kind of module and the job that trains it, and its place in the hub tree: its
    `collection`, the fixed `module_name` of its one module (None: one per expert) and
    whether it is an image `feature_vector` (see ``tree``)."""

    name: ClassVar[str]
    job: ClassVar[str]
    collection: ClassVar[str]
    module_name: ClassVar[str | None] = None
    feature_vector: ClassVar[bool] = False

    def __init__(self, exporter: ExportContext):
        self.exporter, self.work = exporter, exporter.work

    @classmethod
    def planned(cls, work: TrainedUpstream, explicit: bool) -> tuple[list[tuple], list[str]]:
        """``(node, adapter index)`` of every module to export, and the skipped ones'
        reasons; a kind asked for by name whose job has not finished is an error."""
        if work.finished(cls.job):
            return cls.modules_of(work), []
        if explicit:
            raise ExportError(
                f"{work.job_dir(cls.job)} has no finished run (needed for {cls.name})"
            )
        return [], [f"{cls.name}: {cls.job} not trained"]

    @classmethod
    def modules_of(cls, work: TrainedUpstream) -> list[tuple]:
        return [(None, None)]

    @classmethod
    def checkpoint(cls, target: Target) -> tuple[str, str | None]:
        """(job, expert) of the checkpoint the module is read from."""
        return cls.job, None

    @classmethod
    def model_shape(cls, work: TrainedUpstream) -> tuple[int, int]:
        """(outputs, adapter experts) of the model the checkpoint is read into."""
        return len(work.info.hierarchy), 0

    def training(self, target: Target) -> tuple[dict, int]:
        """The training record and the upstream images the module has seen in all."""
        return self.exporter.training(self.job), self.work.images("baseline") + self.work.images(
            self.job
        )

    def label_distribution(self, target: Target) -> list | None:
        return None

    def slice_images(self, target: Target) -> int:
        return self.exporter.upstream["train_images"]

    def build(self, target: Target, model) -> tuple[modules.Module, dict, dict]:
        """The module, its output description and any extra expert_info fields."""
        raise NotImplementedError


class _FeatureVector(ModuleKind):
    adapter: ClassVar[bool] = False
    feature_vector = True

    def build(self, target, model):
        module = self.exporter.template(model, self.adapter).fill(model, target.index)
        return module, {"feature_vector": [None, model.feature_dim]}, {}


@register
class Baseline(_FeatureVector):
    name, job = "baseline", "baseline"
    collection, module_name = "bit", "baseline"

    def training(self, target):
        return self.exporter.training("baseline"), self.work.images("baseline")

    def label_distribution(self, target):
        counts = self.exporter.train_counts
        from hub_export import metadata

        return metadata.label_distribution(self.work.info.labels, counts / counts.sum())


class _Specialist(_FeatureVector):
    """A kind with one module per expert node, trained on that node's slice."""

    def label_distribution(self, target):
        info = self.work.info
        from hub_export import metadata

        return metadata.label_distribution(info.labels, info.label_prior(target.node))

    def slice_images(self, target):
        return self.exporter.node_counts[target.node]


@register
class Full(_Specialist):
    name, job = "full", "full"
    collection = "bit"

    @classmethod
    def planned(cls, work, explicit):
        targets, skipped = [], []
        for node in work.full_experts or work.experts:
            if work.finished("full", node):
                targets.append((node, None))
            elif explicit:
                raise ExportError(f"{work.job_dir('full', node)} has no finished run")
            else:
                skipped.append(f"full expert {node}: not trained")
        return targets, skipped

    @classmethod
    def checkpoint(cls, target):
        return "full", target.node

    def training(self, target):
        images = self.work.images("baseline") + self.work.images("full", target.node)
        return self.exporter.training("full", target.node), images


@register
class Adapter(_Specialist):
    name, job, adapter = "adapter", "adapter", True
    collection = "bit-adapter"

    @classmethod
    def modules_of(cls, work):
        return [(node, index) for index, node in enumerate(work.experts)]

    @classmethod
    def model_shape(cls, work):
        return len(work.info.hierarchy), len(work.experts)

    def training(self, target):
        # The adapters job gives every expert an equal share of each batch.
        training = self.exporter.training("adapter", prefix=f"{target.node}/")
        training["images_per_expert"] = self.work.images("adapter") // len(self.work.experts)
        return training, self.work.images("baseline") + training["images_per_expert"]


@register
class Packed(ModuleKind):
    name, job = "packed", "adapter"
    collection, module_name = "bit-adapter-packed", "all"
    model_shape = Adapter.model_shape

    def slice_images(self, target):
        info = self.work.info
        mask = info.hierarchy.expert_label_mask(list(self.work.experts), info.labels)
        return int(self.exporter.train_counts @ np.any(mask, axis=0))

    def build(self, target, model):
        dim, experts = model.feature_dim, len(self.work.experts)
        output = {"feature_vector": [None, dim], "all_experts": [None, experts, dim]}
        extra = {"experts": self.exporter.expert_names, "expert_nodes": list(self.work.experts)}
        from hub_export import modules

        return modules.packed_adapters(model), output, extra


@register
class Classifier(ModuleKind):
    name, job = "classifier", "baseline"
    collection, module_name = "bit-classifier", "upstream"
    training = Baseline.training

    def build(self, target, model):
        # Logits over the upstream labels, in label-id order: the index space of every
        # expert's label_distribution. all_logits has every hierarchy node.
        info = self.work.info
        label_nodes = [info.hierarchy.node_index(label) for label in info.labels]
        output = {"logits": [None, len(info.labels)], "activation": "sigmoid"}
        output["labels"] = list(info.labels)
        extra = {"all_logits_nodes": list(info.hierarchy.nodes)}
        from hub_export import modules

        return modules.resnet_classifier(model, label_nodes), output, extra


@register
class Epn(ModuleKind):
    """The expert prediction network: logits over experts, named like their modules."""

    name, job = "epn", "epn"
    collection, module_name = "bit-epn", "epn"

    @classmethod
    def model_shape(cls, work):
        return len(work.experts), 0

    def build(self, target, model):
        output = {"logits": [None, len(self.work.experts)], "activation": "sigmoid"}
        output["labels"] = list(self.exporter.expert_names)
        from hub_export import modules

        return modules.resnet_classifier(model), output, {"expert_nodes": list(self.work.experts)}


KINDS = tree.KINDS  # every class above, as its decorator registered it

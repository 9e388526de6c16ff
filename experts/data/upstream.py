"""What every upstream builder records beside its images, and how to read it back.

An upstream dataset has the features ``image`` (uint8 RGB), ``label`` (a ClassLabel whose
names are hierarchy nodes) and ``style`` (how the image was made: a font face, an emoji
style, the source file). Its tfds metadata (``metadata.json`` in the data_dir)
holds the hierarchy text, the images per label and split, node descriptions and the
automatically chosen experts, so that training needs nothing but the prepared dataset.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from experts.data.hierarchy import Hierarchy, HierarchyError

# Fixed on purpose: the expert choice a builder records (DESIGN.md "cpu" preset: 10-30).
DEFAULT_NUM_EXPERTS = 24
DEFAULT_MIN_EXPERT_IMAGES = 500
DEFAULT_MAX_EXPERT_OVERLAP = 0.8


@dataclasses.dataclass(frozen=True)
class ExpertChoice:
    """Parameters of the paper's automatic expert choice (largest nodes by image count)."""

    num_experts: int = DEFAULT_NUM_EXPERTS
    min_images: int = DEFAULT_MIN_EXPERT_IMAGES
    max_overlap: float = DEFAULT_MAX_EXPERT_OVERLAP
    exclude_roots: bool = True  # a root holds (almost) everything: that is the baseline
    # Nodes chosen first whatever their size: the domains downstream tasks are matched to.
    include: tuple[str, ...] = ()

    def choose(self, hierarchy: Hierarchy, label_counts: Mapping[str, int]) -> list[str]:
        exclude = hierarchy.roots if self.exclude_roots else ()
        return hierarchy.choose_experts(
            label_counts,
            self.num_experts,
            self.min_images,
            exclude,
            self.max_overlap,
            include=tuple(self.include),
        )


@dataclasses.dataclass(frozen=True)
class UpstreamInfo:
    """An upstream dataset's labels and hierarchy, as a training job needs them."""

    name: str
    labels: tuple[str, ...]  # ClassLabel names: label id -> hierarchy node
    hierarchy: Hierarchy
    label_counts: Mapping[str, Mapping[str, int]]  # split -> label -> images
    experts: tuple[str, ...]  # the choice recorded at build time
    descriptions: Mapping[str, str]
    # Values derived from this info, built once and kept as long as it (see derived()).
    _derived: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def derived(self, key, build):
        """``build()``, once per ``key`` for this info: what is costly to derive from it
        (the input pipelines' lookup tables) lives as long as the info, not the process."""
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]

    def counts(self, split: str = "train") -> Mapping[str, int]:
        """Images per label. A sliced split ("train[:10%]") gets its whole split's counts,
        which is what proportions (the expert mix's rates) need."""
        base = split.split("[", 1)[0]
        if base not in self.label_counts:
            raise KeyError(f"{self.name}: no split {base!r}; have {sorted(self.label_counts)}")
        return self.label_counts[base]

    def node_counts(self, split: str = "train") -> dict[str, int]:
        return self.hierarchy.image_counts(self.counts(split))

    def choose_experts(self, choice: ExpertChoice, split: str = "train") -> list[str]:
        return choice.choose(self.hierarchy, self.counts(split))

    def check_experts(self, experts: Sequence[str], split: str = "train") -> None:
        self.hierarchy.check_experts(experts, self.counts(split))

    def job_experts(self, names: Sequence[str] = (), num_experts: int = 0) -> tuple[str, ...]:
        """The experts a job trains: ``names``, or else the choice recorded at build time
        (largest first), cut to its ``num_experts`` largest when that is positive."""
        experts = tuple(names) or self.experts
        if num_experts < 0:
            raise ValueError(f"config.data.num_experts must be >= 0, got {num_experts}")
        if num_experts:
            experts = experts[:num_experts]
        self.check_experts(experts)
        return experts

    def label_prior(self, expert: str, split: str = "train") -> np.ndarray:
        """float64 ``[len(labels)]``: the empirical label distribution of the expert's
        slice, the per-expert prior of the paper's label matching (section 5)."""
        mask = self.hierarchy.expert_label_mask([expert], self.labels)[0]
        counts = np.asarray([self.counts(split)[lab] for lab in self.labels], np.float64) * mask
        if counts.sum() == 0:
            raise HierarchyError(f"{self.name}: expert {expert!r} has no images in {split!r}")
        return counts / counts.sum()


def features(
    image_shape: tuple[int | None, int | None, int], encoding_format: str | None = "png"
) -> tfds.features.FeaturesDict:
    """The upstream features. ``encoding_format`` is how tfds encodes the pixel arrays a
    builder yields; a builder that yields encoded bytes passes None: tfds stores bytes
    as they are, and every reader sniffs the format (``tf.io.decode_image``)."""
    # The ClassLabel's names are set once the builder has listed its classes.
    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=image_shape, encoding_format=encoding_format),
            "label": tfds.features.ClassLabel(),
            "style": tfds.features.Text(),
        }
    )


def record(
    info: tfds.core.DatasetInfo,
    hierarchy: Hierarchy,
    labels: Sequence[str],
    label_counts: Mapping[str, Mapping[str, int]],
    descriptions: Mapping[str, str],
    choice: ExpertChoice,
) -> list[str]:
    """Sets the label names and metadata of a builder being prepared; returns the experts."""
    hierarchy.check_labels(labels)
    if len(set(labels)) != len(labels):
        raise HierarchyError(f"{hierarchy.source}: a label is listed twice")
    info.features["label"].names = list(labels)
    experts = choice.choose(hierarchy, label_counts["train"])
    info.metadata.update(
        {
            "hierarchy": hierarchy.to_text(),
            "label_counts": {s: dict(c) for s, c in label_counts.items()},
            "descriptions": dict(descriptions),
            "experts": experts,
            "expert_choice": dataclasses.asdict(choice),
        }
    )
    return experts


def load_info(builder: tfds.core.DatasetBuilder) -> UpstreamInfo:
    """Reads an upstream's labels and hierarchy from a prepared builder."""
    meta = builder.info.metadata
    where = os.fspath(builder.data_dir)
    if not meta or "hierarchy" not in meta:
        raise ValueError(f"{where}: no upstream metadata (is the dataset prepared?)")
    hierarchy = Hierarchy.from_text(meta["hierarchy"], source=f"{where}/metadata.json")
    labels = tuple(builder.info.features["label"].names)
    hierarchy.check_labels(labels)
    return UpstreamInfo(
        name=builder.name,
        labels=labels,
        hierarchy=hierarchy,
        label_counts={s: dict(c) for s, c in meta["label_counts"].items()},
        experts=tuple(meta["experts"]),
        descriptions=dict(meta.get("descriptions", {})),
    )

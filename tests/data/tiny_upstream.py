"""A generated upstream of many tiny images (2x2 px), for measuring what a slice reads.

The hierarchy has ``groups`` top nodes of ``labels_per_group`` labels each, every label
with ``images_per_label`` images, plus a node ``small`` over the first and the last
label (``2 / (groups * labels_per_group)`` of the images) and ``odd`` over every label
with an odd index: second parents (a DAG), so neither slice is one subtree. Images
are a few pre-encoded PNGs, so building costs the tfds writer, not an image encoder.

    builder = prepare_tiny_upstream(data_dir, TinyUpstreamConfig(name="n200k", ...))
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from experts.data import upstream
from experts.data.hierarchy import Hierarchy


@dataclasses.dataclass(eq=False)
class TinyUpstreamConfig(tfds.core.BuilderConfig):
    groups: int = 10
    labels_per_group: int = 10
    images_per_label: int = 2_000
    validation_per_label: int = 2


def label_name(index: int) -> str:
    return f"label{index:04d}"


def hierarchy_text(config: TinyUpstreamConfig) -> str:
    lines = ["all:", "small: all", "odd: all"]
    lines += [f"group{g}: all" for g in range(config.groups)]
    num_labels = config.groups * config.labels_per_group
    for i in range(num_labels):
        parents = [f"group{i // config.labels_per_group}"]
        parents += ["small"] if i in (0, num_labels - 1) else []
        parents += ["odd"] if i % 2 else []
        lines.append(f"{label_name(i)}: {' '.join(parents)}")
    return "\n".join(lines) + "\n"


def _pngs(count: int = 8) -> list[bytes]:
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        pixels = np.full((2, 2, 3), 30 * i, np.uint8)
        Image.fromarray(pixels).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


class TinyUpstream(tfds.core.GeneratorBasedBuilder):
    """Many 2x2 images over a two-level hierarchy with one DAG node."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [TinyUpstreamConfig(name="default")]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=upstream.features((2, 2, 3)),
            supervised_keys=("image", "label"),
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        config = self.builder_config
        labels = [label_name(i) for i in range(config.groups * config.labels_per_group)]
        per_split = {"train": config.images_per_label, "validation": config.validation_per_label}
        counts = {s: dict.fromkeys(labels, n) for s, n in per_split.items()}
        hierarchy = Hierarchy.from_text(hierarchy_text(config), source="tiny_upstream")
        choice = upstream.ExpertChoice(num_experts=4, min_images=1)
        upstream.record(self.info, hierarchy, labels, counts, {}, choice)
        return {s: self._generate_examples(labels, n, s) for s, n in per_split.items()}

    def _generate_examples(self, labels, per_label, split):
        pngs = _pngs()
        for i, label in enumerate(labels):
            for j in range(per_label):
                key = f"{split}/{i}/{j}"
                yield key, {"image": pngs[(i + j) % len(pngs)], "label": label, "style": ""}


def prepare_tiny_upstream(
    data_dir: str, config: TinyUpstreamConfig, num_shards: int | None = None
) -> TinyUpstream:
    builder = TinyUpstream(config=config, data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False, num_shards=num_shards)
    )
    return builder

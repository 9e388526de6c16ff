"""tfds builder of the embedded default upstream (see ``experts/data/embedded/plan.py``).

    builder = EmbeddedUpstream(config="32px", data_dir=...)
    builder.download_and_prepare()   # renders once, then reads the cache in data_dir

Configs ``32px`` (the cpu preset), ``64px`` and ``128px`` differ only in image size; a
custom ``EmbeddedUpstreamConfig`` (tests: a few fonts and emoji) is passed the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import tensorflow_datasets as tfds

from experts.data import upstream
from experts.data.embedded import plan as embedded

_log = logging.getLogger(__name__)


def embedded_choice() -> upstream.ExpertChoice:
    """The embedded upstream's expert choice: both roots and the matched tasks' nodes
    first, then the largest other nodes."""
    include = dict.fromkeys((embedded.GLYPH_ROOT, embedded.EMOJI_ROOT, *embedded.MATCHED_NODES))
    return upstream.ExpertChoice(exclude_roots=False, include=tuple(include))


@dataclasses.dataclass(eq=False)
class EmbeddedUpstreamConfig(tfds.core.BuilderConfig):
    image_size: int = 32
    spec: embedded.EmbeddedSpec = dataclasses.field(default_factory=embedded.EmbeddedSpec)
    experts: upstream.ExpertChoice = dataclasses.field(default_factory=embedded_choice)


def _size_config(size: int) -> EmbeddedUpstreamConfig:
    return EmbeddedUpstreamConfig(
        name=f"{size}px", image_size=size, description=f"glyphs and emoji at {size}x{size} px"
    )


class EmbeddedUpstream(tfds.core.GeneratorBasedBuilder):
    """Characters in many font faces and emoji in two styles, with a Unicode hierarchy."""

    # The cache is keyed by config name and version only: bump the version whenever
    # EmbeddedSpec's defaults or the rendering change, or stale data is silently reused.
    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES = {
        "1.0.0": "Glyphs (script/block/category/radical) and emoji (group).",
        "1.1.0": "Probe classes held out (10% of glyphs, 20% of emoji).",
        "1.2.0": "Expert choice keeps the roots and the matched tasks' nodes (same images).",
    }
    BUILDER_CONFIGS = [_size_config(s) for s in (32, 64, 128)]
    DEFAULT_CONFIG_NAME = "32px"

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        return self.dataset_info_from_configs(
            features=upstream.features((size, size, 3)),
            supervised_keys=("image", "label"),
            metadata=tfds.core.MetadataDict(),
            description=__doc__,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # everything is local
        config = self.builder_config
        start = time.time()
        plan = embedded.make_plan(config.spec)
        counts = {s: plan.label_counts(s) for s in ("train", "validation")}
        upstream.record(
            self.info, plan.hierarchy, plan.labels, counts, plan.descriptions, config.experts
        )
        _log.info(
            "planned %d images of %d classes (%d nodes) in %.1f s",
            len(plan.items),
            len(plan.labels),
            len(plan.hierarchy),
            time.time() - start,
        )
        return {s: self._generate_examples(plan, s) for s in ("train", "validation")}

    def _generate_examples(self, plan: embedded.Plan, split: str):
        config = self.builder_config
        for item in plan.items:
            if item.split == split:
                image = embedded.render(item, plan.faces, config.image_size, config.spec)
                yield item.key, {"image": image, "label": item.label, "style": item.style}

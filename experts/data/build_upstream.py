r"""Builds (or re-opens) an upstream and reports what is in it.

    python -m experts.data.build_upstream --config.data_dir=runs/tfds --config.image_size=32
    python -m experts.data.build_upstream --config.data_dir=runs/tfds \
        --config.image_folder=my_upstream

The first builds the embedded upstream; the second a user's folder
(``my_upstream/images/<class>/*.jpg`` plus ``my_upstream/hierarchy.txt``, see
``builders/image_folder_upstream.py``) as ``image_folder_upstream``, which the job
configs then name with ``--config.data.name=image_folder_upstream``. Every field:
``experts/configs/data.py``.

The first run renders every image (a few minutes on 2 cores); later runs read the cache in
``data_dir``. Prints the image and node counts, the automatically chosen experts with
their training images, the build time, and writes a PNG grid of training samples and
each split's slice index (``data/slice_index.py``: what lets a full expert read only its
slice).
"""

from __future__ import annotations

import dataclasses
import io
import os
import time

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image

import fanout.flags
from experts.configs import data as data_config
from experts.data import slice_index, upstream
from experts.data.builders import (
    EmbeddedUpstream,
    EmbeddedUpstreamConfig,
    ImageFolderUpstream,
    ImageFolderUpstreamConfig,
)
from experts.data.embedded import plan as embedded
from experts.data.embedded import probes
from experts.data.hierarchy import HierarchyError
from fanout import cli, files


def builder_for(data_dir: str, image_size: int) -> EmbeddedUpstream:
    """The standard config of that size, so every caller shares one cache directory."""
    if image_size in (32, 64, 128):
        return EmbeddedUpstream(config=f"{image_size}px", data_dir=data_dir)
    config = EmbeddedUpstreamConfig(name=f"{image_size}px", image_size=image_size)
    return EmbeddedUpstream(config=config, data_dir=data_dir)


def sample_grid(builder, path: str, side: int, seed: int = 0) -> None:
    """Writes ``side`` x ``side`` random training images as one PNG (atomically)."""
    # Only the chosen images are decoded: the rest are skipped as encoded bytes.
    ds = builder.as_dataset(
        split="train", shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()}
    )
    rng = np.random.default_rng(seed)
    total = builder.info.splits["train"].num_examples
    wanted = set(rng.choice(total, size=min(total, side * side), replace=False).tolist())
    images = [
        np.asarray(Image.open(io.BytesIO(ex["image"])).convert("RGB"))
        for i, ex in enumerate(ds.as_numpy_iterator())
        if i in wanted
    ]
    rng.shuffle(images)
    s = images[0].shape[0]
    grid = np.full((side * (s + 2), side * (s + 2), 3), 255, np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, side)
        grid[r * (s + 2) + 1 : r * (s + 2) + 1 + s, c * (s + 2) + 1 : c * (s + 2) + 1 + s] = image
    scale = max(1, 512 // grid.shape[0])  # small images are enlarged so they can be seen
    out = Image.fromarray(grid).resize(
        (grid.shape[1] * scale, grid.shape[0] * scale), Image.Resampling.NEAREST
    )
    files.write_png(path, out)


def main(config):
    logging.set_verbosity(logging.INFO)
    with cli.user_errors("experts.data.build_upstream", (HierarchyError,)):
        build(config)


def build(config) -> None:
    folder, size = config.image_folder, config.max_size
    if folder:
        folder_config = (
            ImageFolderUpstreamConfig(name=f"max{size}", max_size=size) if size else None
        )
        builder = ImageFolderUpstream(data_dir=config.data_dir, config=folder_config)
    else:
        builder = builder_for(config.data_dir, config.image_size)
    start = time.time()
    cached = builder.is_prepared()
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            try_download_gcs=False, manual_dir=folder and os.path.abspath(folder)
        )
    )
    seconds = time.time() - start
    experts = report(builder, cached, seconds, config)
    index_slices(builder)
    if not folder:  # a user's folder has no renderer to make grids or probes from
        grid = config.grid or os.path.join(
            config.data_dir, f"embedded_upstream_{config.image_size}px.png"
        )
        sample_grid(builder, grid, config.grid_side)
        print(f"sample grid: {grid}")
        write_probes(builder, experts, config)


def index_slices(builder) -> None:
    """Writes every split's slice index now (one pass over its records), so that no
    expert job pays that pass; an index already there is checked, not rebuilt."""
    for split in builder.info.splits:
        start = time.time()
        index = slice_index.ensure(builder, split)
        where = index.directory if index is not None else "none: slices read the whole split"
        print(f"slice index ({split}, {time.time() - start:.1f} s): {where}")


def expert_choice(
    builder, num_experts: int, min_images: int, max_overlap: float
) -> upstream.ExpertChoice:
    """The builder's own choice (the nodes it includes first, whether roots count) with
    the sizes the config gives."""
    return dataclasses.replace(
        builder.builder_config.experts,
        num_experts=num_experts,
        min_images=min_images,
        max_overlap=max_overlap,
    )


def report(builder, cached: bool, seconds: float, config) -> list[str]:
    """Prints the counts and the automatically chosen experts, and returns those (the
    choice costs seconds on a large hierarchy: it is made once)."""
    info = upstream.load_info(builder)
    choice = expert_choice(
        builder, config.num_experts, config.min_expert_images, config.max_expert_overlap
    )
    experts = info.choose_experts(choice)
    counts = info.node_counts("train")
    splits = builder.info.splits
    print(f"dataset: {builder.data_dir}")
    print(
        f"images: {splits['train'].num_examples} train + {splits['validation'].num_examples} "
        f"validation; classes: {len(info.labels)}; hierarchy nodes: {len(info.hierarchy)}"
    )
    print(f"{'cache read' if cached else 'built'} in {seconds:.1f} s")
    print(f"experts ({len(experts)}; {choice}):")
    for e in experts:
        print(f"  {e:42s} {counts[e]:7d}  {info.descriptions.get(e, '')}")
    return experts


def write_probes(builder, experts, config) -> None:
    """The held-out probe of every expert node (experts/data/embedded/probes.py), once."""
    size = builder.builder_config.image_size
    out_dir = config.probes_dir or os.path.join(config.data_dir, "embedded_probes", f"{size}px")
    spec = builder.builder_config.spec
    start = time.time()
    manifest = probes.ensure_probes(
        lambda: embedded.make_plan(spec),
        spec,
        experts,
        size,
        out_dir,
        upstream=f"{builder.name}/{builder.builder_config.name}",
        max_images=config.probe_images,
        per_class=config.probe_per_class,
    )
    print(f"probes ({len(manifest['probes'])}, {time.time() - start:.1f} s): {out_dir}")
    for p in manifest["probes"]:
        print(f"  {p['node']:42s} {p['images']:5d} images of {p['classes']:4d} classes")
    for node, why in manifest["skipped"].items():
        print(f"  {node:42s} no probe: {why}")


# Old spellings, each refused in one line naming the new one.
RENAMED = {
    name: f"--config.{name}"
    for name in (
        "data_dir", "image_folder", "max_size", "image_size", "num_experts",
        "min_expert_images", "max_expert_overlap", "grid", "grid_side", "probes_dir",
        "probe_images", "probe_per_class",
    )
}  # fmt: skip

if __name__ == "__main__":
    fanout.flags.launch(
        main, "experts.data.build_upstream", "experts/configs/data.py", workdir=False,
        renamed=RENAMED, rules=data_config.RULES,
    )  # fmt: skip

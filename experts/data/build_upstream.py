"""Builds (or re-opens) an upstream and reports what is in it.

    python -m experts.data.build_upstream --data_dir=runs/tfds --image_size=32
    python -m experts.data.build_upstream --data_dir=runs/tfds --image_folder=my_upstream

The first builds the embedded upstream; the second a user's folder
(``my_upstream/images/<class>/*.jpg`` plus ``my_upstream/hierarchy.txt``, see
``builders/image_folder_upstream.py``) as ``image_folder_upstream``, which the job
configs then name with ``--config.data.name=image_folder_upstream``.

The first run renders every image (a few minutes on 2 cores); later runs read the cache in
``--data_dir``. Prints the image and node counts, the automatically chosen experts with
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
from absl import app, flags, logging
from PIL import Image

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


def define_flags() -> None:
    """Defines this binary's flags; called only when it runs as a program, so that
    importing the module never claims flag names other binaries also define."""
    flags.DEFINE_string("data_dir", "runs/tfds", "tfds data_dir holding the cache.")
    flags.DEFINE_string(
        "image_folder", None, "A folder with images/<class>/ and hierarchy.txt to build."
    )
    flags.DEFINE_integer(
        "max_size",
        None,
        "image_folder: longest image side kept (tfds name image_folder_upstream/max<N>).",
    )
    flags.DEFINE_integer("image_size", 32, "Image side in pixels.")
    flags.DEFINE_integer("num_experts", upstream.DEFAULT_NUM_EXPERTS, "Experts.")
    flags.DEFINE_integer(
        "min_expert_images",
        upstream.DEFAULT_MIN_EXPERT_IMAGES,
        "Fewest training images per expert.",
    )
    flags.DEFINE_float(
        "max_expert_overlap",
        upstream.DEFAULT_MAX_EXPERT_OVERLAP,
        "Largest Jaccard between experts.",
    )
    flags.DEFINE_string(
        "grid", None, "PNG of sample images (default: <data_dir>/embedded_upstream_<size>px.png)."
    )
    flags.DEFINE_integer("grid_side", 16, "Samples per row and column of the grid.")
    flags.DEFINE_string(
        "probes_dir",
        None,
        "Where the specialisation probes go (default: <data_dir>/embedded_probes/<size>px).",
    )
    flags.DEFINE_integer(
        "probe_images", probes.DEFAULT_MAX_IMAGES, "Most images in one expert's probe."
    )
    flags.DEFINE_integer(
        "probe_per_class", probes.DEFAULT_PER_CLASS, "Images per class in a probe, styles apart."
    )


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    with cli.user_errors("experts.data.build_upstream", (HierarchyError,)):
        build(flags.FLAGS.image_folder)


def build(folder: str | None) -> None:
    size = flags.FLAGS.max_size
    if size is not None and size < 1:
        raise ValueError(f"--max_size={size}: give the longest image side kept, in pixels (>= 1)")
    if folder:
        config = ImageFolderUpstreamConfig(name=f"max{size}", max_size=size) if size else None
        builder = ImageFolderUpstream(data_dir=flags.FLAGS.data_dir, config=config)
    else:
        builder = builder_for(flags.FLAGS.data_dir, flags.FLAGS.image_size)
    start = time.time()
    cached = builder.is_prepared()
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            try_download_gcs=False, manual_dir=folder and os.path.abspath(folder)
        )
    )
    seconds = time.time() - start
    experts = report(builder, cached, seconds)
    index_slices(builder)
    if not folder:  # a user's folder has no renderer to make grids or probes from
        grid = flags.FLAGS.grid or os.path.join(
            flags.FLAGS.data_dir, f"embedded_upstream_{flags.FLAGS.image_size}px.png"
        )
        sample_grid(builder, grid, flags.FLAGS.grid_side)
        print(f"sample grid: {grid}")
        write_probes(builder, experts)


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
    the sizes the flags give."""
    return dataclasses.replace(
        builder.builder_config.experts,
        num_experts=num_experts,
        min_images=min_images,
        max_overlap=max_overlap,
    )


def report(builder, cached: bool, seconds: float) -> list[str]:
    """Prints the counts and the automatically chosen experts, and returns those (the
    choice costs seconds on a large hierarchy: it is made once)."""
    info = upstream.load_info(builder)
    choice = expert_choice(
        builder,
        flags.FLAGS.num_experts,
        flags.FLAGS.min_expert_images,
        flags.FLAGS.max_expert_overlap,
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


def write_probes(builder, experts) -> None:
    """The held-out probe of every expert node (experts/data/embedded/probes.py), once."""
    size = builder.builder_config.image_size
    out_dir = flags.FLAGS.probes_dir or os.path.join(
        flags.FLAGS.data_dir, "embedded_probes", f"{size}px"
    )
    spec = builder.builder_config.spec
    start = time.time()
    manifest = probes.ensure_probes(
        lambda: embedded.make_plan(spec),
        spec,
        experts,
        size,
        out_dir,
        upstream=f"{builder.name}/{builder.builder_config.name}",
        max_images=flags.FLAGS.probe_images,
        per_class=flags.FLAGS.probe_per_class,
    )
    print(f"probes ({len(manifest['probes'])}, {time.time() - start:.1f} s): {out_dir}")
    for p in manifest["probes"]:
        print(f"  {p['node']:42s} {p['images']:5d} images of {p['classes']:4d} classes")
    for node, why in manifest["skipped"].items():
        print(f"  {node:42s} no probe: {why}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.flags_parser("experts.data.build_upstream"))

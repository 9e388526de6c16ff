r"""What ``experts.data.build_upstream`` builds: the embedded upstream, or a user's folder.

    python -m experts.data.build_upstream --config.data_dir=runs/tfds --config.image_size=32
    python -m experts.data.build_upstream --config.data_dir=runs/tfds \
        --config.image_folder=my_upstream

One config for every preset. The expert choice made here is what the job configs'
``data.choice.rule="recorded"`` reads back.
"""

from __future__ import annotations

import ml_collections

from experts.data import upstream
from experts.data.embedded import probes
from fanout import config_rules as rule


def get_config(unused_preset: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.data_dir = "runs/tfds"  # the tfds directory holding the cache
    # A folder with images/<class>/ and hierarchy.txt to build; empty: the embedded upstream.
    config.image_folder = ""
    # image_folder: longest image side kept (tfds name image_folder_upstream/max<N>); 0: as is.
    config.max_size = 0
    config.image_size = 32  # the embedded upstream's image side in pixels
    config.num_experts = upstream.DEFAULT_NUM_EXPERTS
    config.min_expert_images = upstream.DEFAULT_MIN_EXPERT_IMAGES  # per expert, training
    config.max_expert_overlap = upstream.DEFAULT_MAX_EXPERT_OVERLAP  # Jaccard between experts
    config.grid = ""  # sample PNG; empty: <data_dir>/embedded_upstream_<size>px.png
    config.grid_side = 16  # samples per row and column of the grid
    # Where the specialisation probes go; empty: <data_dir>/embedded_probes/<size>px.
    config.probes_dir = ""
    config.probe_images = probes.DEFAULT_MAX_IMAGES  # most images in one expert's probe
    config.probe_per_class = probes.DEFAULT_PER_CLASS  # images per class, styles apart
    return config


# One rule per field (fanout/config_rules.py), checked when the binary's flags are parsed.
RULES = {
    "data_dir": rule.path(),
    "image_folder": rule.path(empty=True, meaning="the embedded upstream"),
    "max_size": rule.integer(min=0),
    "image_size": rule.integer(min=1),
    "num_experts": rule.integer(min=1),
    "min_expert_images": rule.integer(min=0),
    "max_expert_overlap": rule.fraction(min_open=True),
    "grid": rule.path(empty=True, meaning="<data_dir>/embedded_upstream_<size>px.png"),
    "grid_side": rule.integer(min=1),
    "probes_dir": rule.path(empty=True, meaning="<data_dir>/embedded_probes/<size>px"),
    "probe_images": rule.integer(min=1),
    "probe_per_class": rule.integer(min=1),
}

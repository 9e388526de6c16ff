r"""What every upstream job config shares: model, data, work directories, optimiser.

Each job file (baseline.py, full.py, adapter.py, epn.py) starts from
``base_config(preset, job)`` and sets its own step counts and learning rate. This
file's own config is the whole upstream (``job="all"``):

    python -m experts.train --config=experts/configs/upstream.py:cpu \
        --workdir=runs/upstream --config.data_dir=runs/tfds

runs every job in dependency order, each with its job file's config at the preset plus
the ``--config.<field>`` given on the command line (``experts.train``).

Work directories: one per job under ``<workdir>`` (layout: ``experts/work_tree.py``);
every job after B reads B's final checkpoint from ``<workdir>/baseline``.
"""

from __future__ import annotations

import ml_collections

from experts import work_tree
from experts.configs import presets
from experts.models import adapters, resnet_v2
from experts.training import distribute, loop, precision
from fanout import config_rules as rule

# The jobs in dependency order: B first; the others need only B, not one another.
JOBS = work_tree.JOBS
ALL = "all"


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    """The whole upstream at ``preset``: every job, B first."""
    return base_config(preset, ALL)


def base_config(preset: str | None, job: str) -> ml_collections.ConfigDict:
    preset = presets.parse_preset(preset)
    config = ml_collections.ConfigDict()
    config.preset = preset
    config.job = job
    config.model = presets.model_config(preset)
    config.model.num_experts = 0
    # Adapter experts: one trainable head bias per expert (models/adapters.py,
    # ExpertHeadBias), where each slice's prior goes instead of into its adapters.
    config.model.expert_head_bias = False
    # Adapter experts: a trainable output scale per adapter, set to B's stream RMS at
    # the block's input before training (models/adapters.py, MultiAdapter).
    config.model.adapter_scale = False
    # Adapter experts: the bottleneck's channels k as a fraction of the adapter's input
    # channels c (models/adapters.py); the paper's k = c / 2.
    config.model.adapter_width = adapters.PAPER_WIDTH
    config.data = _data_config(preset)
    # The tfds directory of the prepared upstream (experts.data.build_upstream).
    config.data_dir = "runs/tfds"
    config.workdir = "runs/upstream"
    config.baseline_workdir = ""  # empty: <workdir>/baseline
    config.expert = ""  # full experts: one expert by name; empty trains all in turn
    # Delete a job's earlier work and train it afresh (a rerun with a changed setting
    # is refused otherwise: experts/work_tree.py).
    config.restart = False
    # "auto": a TPU if there is one, else every local GPU mirrored, else one device.
    config.strategy = "auto" if preset == "paper" else "default"
    config.tpu_address = ""
    # B on this many Ray Train workers under MultiWorkerMirroredStrategy
    # (fanout.ray_train; needs --executor=ray); 1: B is one job like the others.
    config.baseline_workers = 1
    config.eval_batch = 256
    config.train = loop.default_train_config()
    # Adapter experts, trained together on mixed batches: "batch" averages the loss over
    # the batch (each expert weighs its share of it); "per_expert" averages each
    # expert's examples among themselves and sums the experts (jobs.per_expert_weights).
    config.train.expert_loss = "batch"
    config.train.update(_train_overrides(preset))
    return config


def _data_config(preset: str) -> ml_collections.ConfigDict:
    """The upstream data, the expert choice and the training augmentation."""
    return ml_collections.ConfigDict(
        {
            # A tfds name of a prepared upstream (experts/data/builders).
            "name": "embedded_upstream/32px" if preset != "paper" else "image_folder_upstream",
            # Empty: the experts chosen automatically when the data was built.
            "experts": (),
            # 0: all of those; N: the N largest (the choice is ordered by image count).
            # The cpu preset trains the 16 largest: within the demo's time, fewer
            # experts trained longer specialise more (RESULTS.md).
            "num_experts": 16 if preset == "cpu" else 0,
            # How experts are chosen when none are named: "recorded", the choice made
            # when the data was built (build_upstream's flags), or "top", this rule:
            # the num_experts nodes with the most images among those with min_images,
            # dropping one that overlaps a larger one by more than max_overlap (Jaccard
            # of their label sets; 1.0 keeps all), roots excluded or not. The paper
            # (section 6.1) takes the 50 largest ImageNet-21k synsets, roots included.
            "choice": {
                "rule": "top" if preset == "paper" else "recorded",
                "num_experts": 50,
                "min_images": 0 if preset == "paper" else 500,
                "max_overlap": 1.0 if preset == "paper" else 0.8,
                "exclude_roots": preset != "paper",
            },
            # Training augmentation (data/pipelines.py): BiT's Inception-style crop
            # and flip for natural images; the glyphs of the embedded upstream keep
            # most of their canvas and are never mirrored.
            "augment": (
                {"crop_area": (0.08, 1.0), "flip": True}
                if preset == "paper"
                else {"crop_area": (0.6, 1.0), "flip": False}
            ),
        }
    )


def _train_overrides(preset: str) -> dict:
    """The optimisation fields a preset sets on ``loop.default_train_config()``."""
    return {
        "smoke": {"total_steps": 2, "global_batch": 8, "log_every": 1, "checkpoint_every": 1},
        "cpu": {
            "global_batch": 128,
            "log_every": 50,
            "checkpoint_every": 250,
            "steps_per_call": 10,
        },
        # BiT upstream: global batch 4096 on a TPUv3-512, 5k warm-up steps (the
        # warm-up cap), 10x decays at epochs 30, 60 and 80 of 90, weight decay
        # 1e-4, many host steps per call.
        "paper": {
            "global_batch": 4096,
            "decay": "step",
            "step_boundaries": (30 / 90, 60 / 90, 80 / 90),
            "log_every": 500,
            "checkpoint_every": 5000,
            "steps_per_call": 100,
            # bfloat16 on TPUs and recent GPUs, float16 on older GPUs, else float32
            # (experts/training/precision.py).
            "precision": "auto",
        },
    }[preset]


# One rule per field of every job config (fanout/config_rules.py), checked when a binary
# resolves its config (experts.train.resolved_config).
RULES = {
    "preset": rule.one_of(*presets.PRESETS),
    "job": rule.one_of(*work_tree.JOBS, ALL),
    "model.size": rule.one_of(*resnet_v2.SIZES),
    "model.image_size": rule.integer(min=1),
    "model.num_experts": rule.integer(min=0),
    "model.expert_head_bias": rule.boolean(),
    "model.adapter_scale": rule.boolean(),
    "model.adapter_width": rule.number(min=0.0, min_open=True),
    "data.name": rule.text(empty=False),
    "data_dir": rule.path(empty=True, meaning="tfds's default directory"),
    "data.experts": rule.sequence(rule.text(empty=False)),
    "data.num_experts": rule.integer(min=0),
    "data.choice.rule": rule.one_of("recorded", "top"),
    "data.choice.num_experts": rule.integer(min=1),
    "data.choice.min_images": rule.integer(min=0),
    "data.choice.max_overlap": rule.fraction(min_open=True),
    "data.choice.exclude_roots": rule.boolean(),
    "data.augment.crop_area": rule.sequence(rule.fraction(min_open=True), length=2, ordered=True),
    "data.augment.flip": rule.boolean(),
    "workdir": rule.path(),
    "baseline_workdir": rule.path(empty=True, meaning="<workdir>/baseline"),
    "expert": rule.exempt("checked against the upstream's hierarchy when it is opened"),
    "restart": rule.boolean(),
    "strategy": rule.one_of(*distribute.STRATEGIES),
    "tpu_address": rule.text(),
    "baseline_workers": rule.integer(min=1),
    "eval_batch": rule.integer(min=1),
    "train.total_steps": rule.integer(min=1),
    "train.global_batch": rule.integer(min=1),
    "train.base_lr": rule.positive(),
    "train.warmup_fraction": rule.fraction(max_open=True),
    "train.decay": rule.one_of("cosine", "step"),
    "train.step_boundaries": rule.sequence(
        rule.fraction(min_open=True, max_open=True), ordered=True
    ),
    "train.momentum": rule.fraction(max_open=True),
    "train.weight_decay": rule.number(min=0),
    "train.log_every": rule.integer(min=1),
    "train.checkpoint_every": rule.integer(min=1),
    "train.steps_per_call": rule.integer(min=1),
    "train.keep_checkpoints": rule.integer(min=1),
    "train.seed": rule.integer(min=0),
    "train.deterministic": rule.boolean(),
    "train.precision": rule.one_of(*precision.PRECISIONS),
    "train.expert_loss": rule.one_of("batch", "per_expert"),
}

r"""Ranks a pool's modules for one task with the transferability proxies, from cached
features, before any fine-tuning.

    python -m vtab_eval.rank --config=vtab_eval/configs/rank.py:cpu \
        --config.pool=runs/hub --config.task=/data/birds --workdir=runs/rank

Presets (the `:preset` suffix): smoke | cpu | paper. Override any field with
``--config.<field>=<value>``; ``--config.proxies=all`` adds NLEEP to the cpu preset.

* ``smoke``: tests; 16 px, every proxy but NLEEP.
* ``cpu``: r26x0.25 modules at 32 px (the demo pool); every proxy but NLEEP, whose
  mixture fit takes seconds per module.
* ``paper``: 224 px (the paper's resolution) and every feature-based proxy.
"""

from __future__ import annotations

import ml_collections

from fanout import config_rules as rule

PRESETS = ("smoke", "cpu", "paper")
DEFAULT_PRESET = "cpu"
SPLITS = ("train800", "val200", "train800val200", "test")
PRECISIONS = ("float32", "float16", "bfloat16")

FAST_PROXIES = (
    "knn,knn_k5,knn_cosine,knn_cosine_k5,logme,hscore,hscore_shrunk,gbc,transrate,sfda,"
    "ncti,linear_probe"
)


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    preset = (preset or DEFAULT_PRESET).strip()
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    config = ml_collections.ConfigDict()
    config.preset = preset
    config.pool = ""  # a hub root, or comma-separated module handles
    # A task spec (`mini_clipart`, `image_folder(path="/data/birds")`) or a folder of
    # images, one sub-folder per class.
    config.task = ""
    config.data_dir = "runs/tfds"
    config.workdir = ""  # --workdir: the feature cache and the ranking table
    # Comma-separated proxy names, or `all`: every proxy that scores modules from
    # their features.
    config.proxies = "all" if preset == "paper" else FAST_PROXIES
    config.rank_by = "knn"  # the proxy whose order the printed table follows
    config.top = 10  # modules printed (the files hold all)
    config.split = "train800val200"
    config.image_size = {"smoke": 16, "cpu": 32, "paper": 224}[preset]
    config.batch_size = 256
    config.precision = "float32"
    config.include_baseline = True
    # Modules scored side by side, in threads of one BLAS thread each (0: one per core
    # this process may use; 1: one after another, BLAS as configured). The scores do
    # not depend on it beyond rounding.
    config.workers = 0
    config.seed = 0
    return config


RULES = {
    "preset": rule.one_of(*PRESETS),
    "pool": rule.exempt("parsed by the pool, which names a missing or empty one"),
    "task": rule.exempt("parsed by the command, which names a missing or unknown task"),
    "data_dir": rule.path(empty=True, meaning="tfds's default directory"),
    "proxies": rule.exempt("parsed by the command, which names an unknown proxy"),
    "rank_by": rule.exempt("parsed by the command, which names an unknown proxy"),
    "top": rule.integer(min=1),
    "split": rule.one_of(*SPLITS),
    "image_size": rule.integer(min=1),
    "batch_size": rule.integer(min=1),
    "precision": rule.one_of(*PRECISIONS),
    "include_baseline": rule.boolean(),
    "workers": rule.integer(min=0),
    "seed": rule.integer(min=0),
    "workdir": rule.exempt("checked by the binary, which names a missing one"),
}

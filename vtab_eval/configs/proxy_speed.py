r"""The feature proxies' CPU seconds on synthetic features of a pool's shape, this source
tree against another (an older commit's worktree) in one run.

    python -m vtab_eval.bench.proxy_speed --config=vtab_eval/configs/proxy_speed.py:cpu \
        --workdir=runs/bench/proxy_speed --config.baseline=/tmp/wt-before

Presets: smoke | cpu | paper.

* ``smoke``: tests; 3 modules, 60 images of 16 features, 3 classes.
* ``cpu``: the demo pool's shape as the ranking command sees it: 33 modules (B and 32
  experts), r26x0.25's 512 features of 1,000 images (train800val200), 10 classes.
* ``paper``: the same pool with R50x1's 2,048 features.
"""

from __future__ import annotations

import ml_collections

from fanout import config_rules as rule
from vtab_eval.configs.rank import FAST_PROXIES

PRESETS = ("smoke", "cpu", "paper")
DEFAULT_PRESET = "cpu"


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    preset = (preset or DEFAULT_PRESET).strip()
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    config = ml_collections.ConfigDict()
    config.preset = preset
    config.workdir = ""  # --workdir: proxy_speed.json and proxy_speed.md go there
    config.data_dir = ""  # unused: the features are synthetic (every binary has the field)
    config.modules = {"smoke": 3, "cpu": 33, "paper": 33}[preset]
    config.images = {"smoke": 60, "cpu": 1000, "paper": 1000}[preset]
    config.dims = {"smoke": 16, "cpu": 512, "paper": 2048}[preset]
    config.classes = {"smoke": 3, "cpu": 10, "paper": 10}[preset]
    config.proxies = FAST_PROXIES  # comma-separated, as the ranking command takes them
    # Another source tree (a worktree of an older commit) timed in the same run, its
    # children alternating with this tree's; empty: this tree alone.
    config.baseline = ""
    config.rounds = 1  # each tree is timed this many times (alternating); the median
    config.threads = 1  # BLAS threads of each child (1: CPU seconds are one core's)
    # Modules scored side by side in this tree's child and in the baseline's (a tree
    # that cannot is timed one module at a time); the same tree as the baseline with
    # workers = 2 times the threads against one in one run.
    config.workers = 1
    config.baseline_workers = 1
    config.seed = 0
    return config


RULES = {
    "preset": rule.one_of(*PRESETS),
    "workdir": rule.exempt("checked by the binary, which names a missing one"),
    "data_dir": rule.exempt("unused: the features are synthetic"),
    "modules": rule.integer(min=1),
    "images": rule.integer(min=4),
    "dims": rule.integer(min=1),
    "classes": rule.integer(min=2),
    "proxies": rule.exempt("parsed by the ranking command's own rules"),
    "baseline": rule.exempt("checked by the binary, which names a missing tree"),
    "rounds": rule.integer(min=1),
    "threads": rule.integer(min=1),
    "workers": rule.integer(min=1),
    "baseline_workers": rule.integer(min=1),
    "seed": rule.integer(min=0),
}

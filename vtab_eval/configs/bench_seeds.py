r"""The headline over several upstream seeds (``vtab_eval.bench.seeds``).

    python -m vtab_eval.bench.seeds --config=vtab_eval/configs/bench_seeds.py:cpu \
        --workdir=runs/bench/seeds

``--workdir`` holds one ``seed-<s>/`` per upstream seed (``make bench-seeds``); the
headline goes to ``<workdir>/headline.md`` and ``headline.json``. Presets differ only in
how many bootstrap and permutation samples are drawn (``smoke`` few, for tests).
"""

from __future__ import annotations

import ml_collections

from fanout import config_rules as rule
from vtab_eval.configs import transfer

PRESETS = transfer.PRESETS


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    preset = transfer.parse_preset(preset)
    config = ml_collections.ConfigDict()
    config.preset = preset
    config.workdir = "runs/bench/seeds"
    # Comma-separated methods to report; empty: every method the seeds' results have.
    config.methods = ""
    # Gains are relative to this method's accuracy (the generic model B).
    config.reference = "baseline"
    # The random-expert control every method is also compared with ('' : none).
    config.control = "random"
    # The method whose gain the others' are a share of, on the seeds that ran it ('' :
    # none); it may run on some seeds only (report/seed_fewer.py).
    config.oracle = "oracle"
    # The proxy every other is compared with when judged against fine-tuning (the
    # paper's kNN).
    config.proxy_reference = "knn"
    config.bootstrap_samples = 200 if preset == "smoke" else 4000
    # Sign patterns drawn when there are too many (seeds x tasks) to enumerate them all.
    config.permutation_samples = 2000 if preset == "smoke" else 50000
    config.confidence = 0.95
    config.seed = 0  # of the bootstrap's and the permutation test's generator
    return config


RULES = {
    "preset": rule.one_of(*PRESETS),
    "workdir": rule.path(),
    "methods": rule.exempt("checked against the methods the seeds' results have"),
    "reference": rule.text(empty=False),
    "control": rule.text(),
    "oracle": rule.text(),
    "proxy_reference": rule.text(empty=False),
    "bootstrap_samples": rule.integer(min=1),
    "permutation_samples": rule.integer(min=1),
    "confidence": rule.fraction(min_open=True, max_open=True),
    "seed": rule.integer(min=0),
}

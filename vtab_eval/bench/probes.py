r"""The specialisation benchmark on its own (``vtab_eval/report/probes.py`` says what it measures).

    python -m vtab_eval.bench.probes --pool=runs/demo/hub \
        --probes=runs/tfds/embedded_probes/32px --output_dir=runs/bench/probes \
        [--cache_dir=runs/demo/transfer/features]

With the feature cache of a transfer run that embedded the probes (``vtab_eval.main
--config.probes=...``), nothing is embedded again.
"""

from __future__ import annotations

import os

from absl import app, flags, logging

from fanout import cli
from vtab_eval.pool import expert_pool as pool_lib
from vtab_eval.report import probes


def define_flags() -> None:
    flags.DEFINE_string("pool", "runs/demo/hub", "A hub root or comma-separated handles.")
    flags.DEFINE_string("probes", "runs/tfds/embedded_probes/32px", "A probe folder.")
    flags.DEFINE_string("output_dir", "runs/demo/probes", "Where results go.")
    flags.DEFINE_string("cache_dir", "", "Feature cache; empty: <output_dir>/features.")
    flags.DEFINE_integer("batch_size", 256, "Images per forward pass.")


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    f = flags.FLAGS
    cache = f.cache_dir or os.path.join(f.output_dir, "features")
    try:
        record = probes.run(f.pool, f.probes, f.output_dir, cache, f.batch_size)
    except (pool_lib.PoolError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"vtab_eval.bench.probes: {e}") from None
    print(record["summary_line"])
    print(f"probes: {f.output_dir}/probes.md")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.flags_parser("vtab_eval.bench.probes"))

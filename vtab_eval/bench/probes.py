r"""The specialisation benchmark on its own (``vtab_eval/probes.py`` says what it measures).

    python -m vtab_eval.bench.probes --pool=runs/demo/hub \
        --probes=runs/tfds/embedded_probes/32px --output_dir=runs/bench/probes \
        [--cache_dir=runs/demo/transfer/features]

With the feature cache of a transfer run that embedded the probes (``vtab_eval.main
--config.probes=...``), nothing is embedded again.
"""

from __future__ import annotations

import os

from absl import app, flags, logging

from vtab_eval import pool as pool_lib
from vtab_eval import probes

_POOL = flags.DEFINE_string("pool", "runs/demo/hub", "A hub root or comma-separated handles.")
_PROBES = flags.DEFINE_string(
    "probes", "runs/tfds/embedded_probes/32px", "A probe folder with probes.json."
)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/demo/probes", "Where results go.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", "", "Feature cache; empty: <output_dir>/features.")
_BATCH = flags.DEFINE_integer("batch_size", 256, "Images per forward pass.")


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    cache = _CACHE_DIR.value or os.path.join(_OUTPUT_DIR.value, "features")
    try:
        record = probes.run(_POOL.value, _PROBES.value, _OUTPUT_DIR.value, cache, _BATCH.value)
    except (pool_lib.PoolError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"vtab_eval.bench.probes: {e}") from None
    print(record["summary_line"])
    print(f"probes: {_OUTPUT_DIR.value}/probes.md")


if __name__ == "__main__":
    app.run(main)

r"""Exports a trained upstream work tree as TF-Hub modules (see exporter.py, tree.py).

    python -m hub_export.export --config.workdir=runs/demo/upstream \
        --config.hub_root=runs/demo/hub [--data_dir=runs/tfds]

Options (config fields): ``--config.kinds=baseline,full,adapter,packed,classifier,epn``
(default: every module whose job has finished), ``--config.overwrite=true`` to replace
existing modules or ``--config.skip_existing=true`` to keep them and export only new
ones (reruns), ``--config.publisher`` and ``--config.version``. Then list the tree with
``python -m hub_export.catalog --hub_root=runs/demo/hub``.
"""

from __future__ import annotations

import sys
import time

from absl import app, flags
from ml_collections import config_flags

from hub_export import exporter, tree


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    start = time.perf_counter()
    config = flags.FLAGS.config
    if flags.FLAGS.data_dir is not None:
        config.data_dir = flags.FLAGS.data_dir
    try:
        results = exporter.export(config)
    except (tree.ExportError, FileNotFoundError) as e:
        # Expected problems (missing runs, existing modules, bad names) are one line.
        sys.exit(f"hub_export: error: {e}")
    total = sum(r["size_bytes"] for r in results)
    print(
        f"exported {len(results)} modules ({total / 2**20:.1f} MiB) to "
        f"{config.hub_root} in {time.perf_counter() - start:.0f}s",
        flush=True,
    )


if __name__ == "__main__":
    # Defined only when run as a program, so that importing this module (as the tests
    # do) never claims flag names that other binaries define in the same process.
    config_flags.DEFINE_config_file("config", "hub_export/config.py")
    flags.DEFINE_string(
        "data_dir", None, "tfds directory of the upstream (default: where B was trained from)."
    )
    app.run(main)

r"""Exports a trained upstream work tree as TF-Hub modules (see exporter.py, tree.py).

    python -m hub_export.export --config.workdir=runs/demo/upstream \
        --config.hub_root=runs/demo/hub [--data_dir=runs/tfds]

Options (config fields): ``--config.kinds=baseline,full,adapter,packed,classifier,epn``
(default: every module whose job has finished), ``--config.overwrite=true`` to replace
existing modules or ``--config.skip_existing=true`` to keep them and export only new
ones (reruns), ``--config.publisher`` and ``--config.version``; ``--executor=ray`` exports each module
as a Ray task (``fanout``). Then list the tree with
``python -m hub_export.catalog --hub_root=runs/demo/hub``.
"""

from __future__ import annotations

import time

from absl import app, flags

import fanout
import fanout.flags
from fanout import cli, config_rules
from hub_export import config as export_config
from hub_export import exporter, tree


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = flags.FLAGS.config
    if flags.FLAGS.data_dir is not None:
        config.data_dir = flags.FLAGS.data_dir
    execute(config, fanout.flags.executor)


def execute(config, executor=None) -> list[dict]:
    """Exports what ``config`` names, with expected problems (missing runs, existing
    modules, bad names) ended in one line, as the binary reports them. ``executor``:
    an executor, or a function that makes one (``fanout.flags.executor``)."""
    start = time.perf_counter()
    with cli.user_errors("hub_export", (tree.ExportError,)):
        config_rules.check(config, export_config.RULES)
        executor = fanout.resolve(executor)
        results = exporter.export(config, executor=executor)
    total = sum(r["size_bytes"] for r in results)
    print(
        f"exported {len(results)} modules ({total / 2**20:.1f} MiB) to "
        f"{config.hub_root} in {time.perf_counter() - start:.0f}s",
        flush=True,
    )
    return results


if __name__ == "__main__":
    # Defined only when run as a program, so that importing this module (as the tests
    # do) never claims flag names that other binaries define in the same process.
    cli.define_config("hub_export", "hub_export/config.py")
    flags.DEFINE_string(
        "data_dir", None, "tfds directory of the upstream (default: where B was trained from)."
    )
    fanout.flags.define()
    app.run(main, flags_parser=cli.flags_parser("hub_export"))

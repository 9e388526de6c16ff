r"""Exports a trained upstream work tree as TF-Hub modules (see exporter.py, tree.py).

    python -m hub_export.export --workdir=runs/demo/upstream \
        --config.hub_root=runs/demo/hub [--config.data_dir=runs/tfds]

``--workdir`` is the upstream work tree (``experts.train``'s). Options (config fields,
hub_export/config.py): ``--config.kinds=baseline,full,adapter,packed,classifier,epn``
(default: every module whose job has finished), ``--config.overwrite=true`` to replace
existing modules or ``--config.skip_existing=true`` to keep them and export only new
ones (reruns), ``--config.publisher`` and ``--config.version``; ``--executor=ray``
exports each module as a Ray task (``fanout``). Then list the tree with
``python -m hub_export.catalog --config.hub_root=runs/demo/hub``.
"""

from __future__ import annotations

import time

import fanout
import fanout.flags
from fanout import cli, config_rules
from hub_export import config as export_config
from hub_export import exporter, tree


def main(config):
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


# Old spellings, each refused in one line naming the new one.
RENAMED = {"data_dir": "--config.data_dir", "hub_root": "--config.hub_root"}

if __name__ == "__main__":
    # Defined only when run as a program, so that importing this module (as the tests
    # do) never claims flag names that other binaries define in the same process.
    fanout.flags.launch(main, "hub_export", "hub_export/config.py", executor=True, renamed=RENAMED)

r"""Hub export config: which upstream work tree to read and where the hub tree goes.

    python -m hub_export.export --config=hub_export/config.py \
        --workdir=runs/demo/upstream --config.hub_root=runs/demo/hub \
        [--config.overwrite=true | --config.skip_existing=true] [--config.kinds=full,adapter]
    python -m hub_export.catalog --config.hub_root=runs/demo/hub [--config.kinds=full]

Everything else (model size, resolution, upstream data, experts, each job's batch) is
read from the configs the training jobs recorded in the work tree
(``experts/work_tree.py``). ``--config.data_dir`` points at the prepared upstream when
it has moved since training. The catalog reads ``hub_root``, ``kinds`` (the kinds it
lists; empty: all) and ``json``.
"""

from __future__ import annotations

import ml_collections

from fanout import config_rules as rule


def get_config(unused_preset: str | None = None) -> ml_collections.ConfigDict:
    """One config for every preset: the work tree records its own."""
    config = ml_collections.ConfigDict()
    config.workdir = "runs/upstream"  # the upstream work tree: baseline/, full/, ...
    config.hub_root = "runs/hub"
    config.data_dir = ""  # empty: where B's training read the upstream
    config.publisher = "local"
    config.version = 1
    # Comma-separated subset of baseline,full,adapter,packed,classifier,epn. Empty: every
    # module whose training job has finished (a named kind must have finished).
    config.kinds = ""
    # Existing modules exported from the same checkpoint since it was written are kept
    # (a rerun resumes); any other existing module stops the export unless one of:
    config.overwrite = False  # replace existing modules
    config.skip_existing = False  # keep every existing module, export the rest
    # hub_export.catalog: JSON entries instead of a table.
    config.json = False
    return config


# One rule per field (fanout/config_rules.py), checked when hub_export.export starts.
RULES = {
    "workdir": rule.path(),
    "hub_root": rule.path(),
    "data_dir": rule.path(empty=True, meaning="where B's training read the upstream"),
    "publisher": rule.name(),
    "version": rule.integer(min=1),
    # Each kind is checked against the known ones when the export starts.
    "kinds": rule.text(),
    "overwrite": rule.boolean(),
    "skip_existing": rule.boolean(),
    "json": rule.boolean(),
}

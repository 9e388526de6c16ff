"""Exports training checkpoints as TF-Hub modules (see DESIGN.md, "Hub module").

* ``modules``: the savable objects (feature vector, packed adapters, classifiers);
* ``tree``: the tfhub-style layout, atomic writes, the catalog;
* ``metadata``: ``expert_info.json`` and the model cards;
* ``trained``: a finished upstream work tree, as the exporter reads it;
* ``kinds``: one class per module kind, seeing the export only through ``ExportContext``;
* ``exporter``: work tree -> hub tree; ``config.py`` is its config;
* binaries: ``export``, ``catalog`` (``python -m hub_export.<name>``); benchmarks in
  ``bench/``: ``feature_extraction``, ``accelerator_module``
  (``python -m hub_export.bench.<name>``).

The loader for the evaluation side lives in ``vtab_eval/pool/hub_loader.py``: ``vtab_eval``
never imports this package.
"""

# The module kinds register themselves in ``tree.KINDS``, which places their modules.
from hub_export import kinds  # noqa: F401

r"""Hub export config: which upstream work tree to read and where the hub tree goes.

    python -m hub_export.export --config=hub_export/config.py:cpu \
        --config.workdir=runs/demo/upstream --config.data.data_dir=runs/tfds \
        --config.hub_root=runs/demo/hub [--config.overwrite=true | --config.skip_existing=true] \
        [--config.kinds=full,adapter]

The model and data fields must match the ones the upstream jobs were trained with (the
same preset and overrides as ``experts.train``); a mismatched model size is caught when
a checkpoint is read. ``global_batch`` holds each job's training batch, used only to
count the images a module has seen; it defaults to the jobs' own configs (set it here
if training overrode ``--config.train.global_batch``).

Expected result (cpu preset, 24 experts): 52 modules under
``<hub_root>/local/experts/``, listed by ``python -m hub_export.catalog``.
"""

from __future__ import annotations

import ml_collections

from experts.configs import adapter_experts, baseline, epn, full_experts, presets, upstream


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    preset = presets.parse_preset(preset)
    jobs = upstream.base_config(preset, "baseline")
    config = ml_collections.ConfigDict()
    config.preset = preset
    config.model = presets.model_config(preset)
    config.data = jobs.data  # name, data_dir, experts (empty: the data's own choice)
    config.workdir = jobs.workdir  # the upstream work tree: baseline/, full/, adapters/, epn/
    config.hub_root = "runs/hub"
    config.publisher = "local"
    config.version = 1
    # Comma-separated subset of baseline,full,adapter,packed,classifier,epn. Empty: every
    # module whose training job has finished (a named kind must have finished).
    config.kinds = ""
    config.overwrite = False  # replace existing modules
    config.skip_existing = False  # keep existing modules, export the rest (for reruns)
    config.global_batch = {
        job: module.get_config(preset).train.global_batch
        for job, module in (
            ("baseline", baseline),
            ("full", full_experts),
            ("adapters", adapter_experts),
            ("epn", epn),
        )
    }
    return config

r"""Trains an upstream job: the baseline B, full experts, adapter experts or the EPN.

    python -m experts.train --config=experts/configs/baseline.py:cpu
    python -m experts.train --config=experts/configs/full_experts.py:cpu [--config.expert=X]
    python -m experts.train --config=experts/configs/adapter_experts.py:cpu
    python -m experts.train --config=experts/configs/epn.py:cpu

Flags beyond the config: none; the strategy is ``--config.strategy`` (default,
mirrored, multi_worker_mirrored, tpu). Rerunning a job resumes it; a finished job is
skipped. TensorBoard: ``tensorboard --logdir <workdir>``.
"""

from __future__ import annotations

import time
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from experts import jobs
from experts.training import distribute, loop


def job_workdir(config, expert: str | None = None) -> Path:
    root = Path(config.workdir)
    return root / "full" / expert if config.job == "full" else root / config.job


def run(config) -> dict[str, dict]:
    """Runs the configured job (every full expert in turn when none is named);
    returns the metrics per work directory."""
    if config.job not in jobs.JOBS:
        raise ValueError(f"unknown job {config.job!r}; choose one of {', '.join(jobs.JOBS)}")
    config.baseline_workdir = config.baseline_workdir or str(Path(config.workdir) / "baseline")
    strategy = distribute.make_strategy(config.strategy, config.tpu_address)
    data = jobs.Upstream.open(config)
    if config.job == "full":
        experts = [config.expert] if config.expert else list(data.experts)
        if config.expert and config.expert not in data.info.hierarchy:
            raise ValueError(f"--config.expert={config.expert!r} is not a hierarchy node")
        work = [(jobs.full_expert_job(config, data, e), job_workdir(config, e)) for e in experts]
    else:
        make = {
            "baseline": jobs.baseline_job,
            "adapters": jobs.adapter_experts_job,
            "epn": jobs.epn_job,
        }[config.job]
        work = [(make(config, data), job_workdir(config))]
    results = {}
    for index, (job, workdir) in enumerate(work, 1):
        start = time.perf_counter()
        print(f"== {job.name} ({index}/{len(work)}) in {workdir}", flush=True)
        results[str(workdir)] = loop.train(job, config.train, workdir, strategy)
        print(f"== {job.name} done in {time.perf_counter() - start:.0f}s", flush=True)
    return results


def main(argv):
    del argv
    run(flags.FLAGS.config)


if __name__ == "__main__":
    # Defined only when run as a program: tests import run(), and other binaries'
    # modules (hub_export.export) define their own --config in the same process.
    config_flags.DEFINE_config_file("config", "experts/configs/baseline.py:cpu")
    app.run(main)

r"""Trains an upstream job: the baseline B, full experts, adapter experts or the EPN.

    python -m experts.train --config=experts/configs/baseline.py:cpu
    python -m experts.train --config=experts/configs/full_experts.py:cpu [--config.expert=X]
    python -m experts.train --config=experts/configs/adapter_experts.py:cpu
    python -m experts.train --config=experts/configs/epn.py:cpu

Flags beyond the config: ``--data_dir`` (the prepared upstream's tfds directory, as
for every binary; it sets ``--config.data.data_dir``). The strategy is
``--config.strategy`` (default, mirrored, multi_worker_mirrored, tpu).

Rerunning a job resumes it, and a finished job is skipped. Each job records its config
when it starts (``experts.work_tree``): a rerun with a setting that would change its
results is refused, naming the field; ``--config.restart=true`` trains it afresh.
TensorBoard: ``tensorboard --logdir <workdir>``.
"""

from __future__ import annotations

import time

from absl import app, flags

from experts import cli, jobs, work_tree
from experts.training import distribute, loop


def recorded_config(config, data: jobs.Upstream, expert: str | None) -> dict:
    """The job's config as it is recorded: the experts resolved to the ones this job
    trains (none for B, which trains on everything), so that training more experts
    later does not count as a change to the jobs already done."""
    resolved = config.to_dict()
    resolved["expert"] = expert or ""
    experts = {"baseline": [], "full": [expert]}.get(config.job, list(data.experts))
    resolved["data"]["experts"] = experts
    return resolved


def run(config) -> dict[str, dict]:
    """Runs the configured job (every full expert in turn when none is named);
    returns the metrics per work directory."""
    if config.job not in jobs.JOBS:
        raise ValueError(f"unknown job {config.job!r}; choose one of {', '.join(jobs.JOBS)}")
    tree = work_tree.WorkTree(config.workdir)
    config.baseline_workdir = config.baseline_workdir or str(tree.baseline.path)
    strategy = distribute.make_strategy(config.strategy, config.tpu_address)
    data = jobs.Upstream.open(config)
    if config.job == "full":
        experts = [config.expert] if config.expert else list(data.experts)
        if config.expert and config.expert not in data.info.hierarchy:
            raise ValueError(f"--config.expert={config.expert!r} is not a hierarchy node")
        work = [(jobs.full_expert_job(config, data, e), e) for e in experts]
    else:
        make = {
            "baseline": jobs.baseline_job,
            "adapters": jobs.adapter_experts_job,
            "epn": jobs.epn_job,
        }[config.job]
        work = [(make(config, data), None)]
    results, compiled_jobs = {}, loop.CompiledJobs()
    for index, (job, expert) in enumerate(work, 1):
        start = time.perf_counter()
        jobdir = tree.job(config.job, expert)
        print(f"== {job.name} ({index}/{len(work)}) in {jobdir.path}", flush=True)
        jobdir.start(recorded_config(config, data, expert), restart=config.get("restart", False))
        results[str(jobdir.path)] = loop.train(
            job, config.train, jobdir.path, strategy, compiled_jobs
        )
        print(f"== {job.name} done in {time.perf_counter() - start:.0f}s", flush=True)
    return results


def main(argv):
    del argv
    config = flags.FLAGS.config
    if flags.FLAGS.data_dir is not None:
        config.data.data_dir = flags.FLAGS.data_dir
    execute(config)


def execute(config) -> dict[str, dict]:
    """``run``, with a user's mistake (a changed setting, a missing B, a bad name) ended
    in one line naming it, as the binary reports it."""
    with cli.user_errors("experts.train", (work_tree.ConfigChanged,)):
        return run(config)


if __name__ == "__main__":
    # Defined only when run as a program: tests import run(), and other binaries'
    # modules (hub_export.export) define their own --config in the same process.
    cli.define_config("experts.train", "experts/configs/baseline.py:cpu")
    flags.DEFINE_string("data_dir", None, "tfds directory of the prepared upstream.")
    app.run(main, flags_parser=cli.flags_parser("experts.train"))

r"""Trains the upstream: every job in dependency order, or one job.

    python -m experts.train --config=experts/configs/upstream.py:cpu \
        --workdir=runs/upstream --config.data_dir=runs/tfds              # all, B first
    python -m experts.train --config=experts/configs/baseline.py:cpu --workdir=...
    python -m experts.train --config=experts/configs/full.py:cpu --workdir=... \
        [--config.expert=X]
    python -m experts.train --config=experts/configs/adapter.py:cpu --workdir=...
    python -m experts.train --config=experts/configs/epn.py:cpu --workdir=...

``--config.job=all`` (the default of ``upstream.py``) runs B, then every full expert,
the adapter job and the EPN, which need only B and not one another; each job runs
with its own file's config at the preset plus every ``--config.<field>`` given. The
strategy is ``--config.strategy`` (auto, default, mirrored, multi_worker_mirrored, tpu).

Independent jobs (the full experts; after B, every job) fan out: ``--executor=ray``
runs each as a Ray task (``fanout``: ``--ray_address``, ``--job_cpus``, ``--job_gpus``,
``--job_memory_gb``); the default ``--executor=local`` runs them one after another in
this process. ``--config.baseline_workers=N`` trains B on N Ray Train workers.

Rerunning a job resumes it, and a finished job is skipped. Each job records its config
when it starts (``experts.work_tree``): a rerun with a setting that would change its
results is refused, naming the field; ``--config.restart=true`` trains it afresh.
TensorBoard: ``tensorboard --logdir <workdir>``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os

import numpy as np

import fanout
import fanout.flags
import fanout.ray_train
from experts import jobs, work_tree
from experts.configs import upstream
from experts.training import distribute, loop
from fanout import cli, config_rules
from fanout import recorded_config as recorded
from fanout.worker_cache import WorkerCache


def recorded_config(config, data: jobs.Upstream, expert: str | None) -> dict:
    """The job's config as it is recorded: the experts resolved to the ones this job
    trains (none for B, which trains on everything), so that training more experts
    later does not count as a change to the jobs already done."""
    resolved = config.to_dict()
    resolved["expert"] = expert or ""
    experts = {"baseline": [], "full": [expert]}.get(config.job, list(data.experts))
    resolved["data"]["experts"] = experts
    return resolved


def planned_jobs(config, data: jobs.Upstream) -> list[tuple[loop.Job, str | None]]:
    """(job, expert) pairs the config asks for: every full expert when none is named."""
    if config.job == "full":
        experts = [config.expert] if config.expert else list(data.experts)
        if config.expert and config.expert not in data.info.hierarchy:
            raise ValueError(f"--config.expert={config.expert!r} is not a hierarchy node")
        return [(finite_at_the_end(jobs.full_expert_job(config, data, e)), e) for e in experts]
    make = {
        "baseline": jobs.baseline_job,
        "adapter": jobs.adapter_job,
        "epn": jobs.epn_job,
    }[config.job]
    return [(finite_at_the_end(make(config, data)), None)]


def finite_at_the_end(job: loop.Job) -> loop.Job:
    """``job``, checking before its evaluation (which precedes writing its final
    weights) that training left every weight finite: a run that diverged (a NaN or
    infinite loss) fails in one line instead of finishing a job that hub_export
    would turn into a module of garbage."""
    evaluate = job.evaluate

    def checked(model) -> dict:
        bad = [w.name for w in model.weights if not np.isfinite(w.numpy()).all()]
        if bad:
            raise ValueError(
                f"{job.name}: training diverged: {len(bad)} of {len(model.weights)} weight "
                f"tensors are not finite (first {bad[0]}), so the job is not marked finished; "
                "train it afresh with a smaller --config.train.base_lr and --config.restart=true"
            )
        return evaluate(model) if evaluate is not None else {}

    return dataclasses.replace(job, evaluate=checked)


def train_job(config, data, job: loop.Job, expert: str | None, strategy, compiled) -> dict:
    """One job in its directory, which it holds while it trains."""
    jobdir = work_tree.WorkTree(config.workdir).job(config.job, expert)
    print(f"== {job.name} in {jobdir.path}", flush=True)
    with jobdir.lock():
        jobdir.start(recorded_config(config, data, expert), restart=config.get("restart", False))
        return loop.train(job, config.train, jobdir.path, strategy, compiled)


# What a Ray worker's jobs of one config (the expert aside) share: the opened
# upstream, the strategy, the compiled steps.
_WORKER_STATE = WorkerCache("experts.train")


def train_alone(config, expert: str | None) -> dict:
    """One job from nothing but its config, as a Ray worker runs it: it opens the
    upstream and builds its strategy itself, or takes them from the worker's last job
    of the same config."""
    config = config.copy_and_resolve_references()
    config.expert = expert or ""
    key = json.dumps({**config.to_dict(), "expert": ""}, sort_keys=True, default=str)

    def build():
        strategy = distribute.make_strategy(config.strategy, config.tpu_address)
        return jobs.Upstream.open(config), strategy, loop.CompiledJobs()

    data, strategy, compiled = _WORKER_STATE.get(key, build)
    [(job, _)] = planned_jobs(config, data)
    return train_job(config, data, job, expert, strategy, compiled)


def executor_jobs(config, executor: fanout.Executor) -> tuple[list[str], list[fanout.Job]]:
    """The configured jobs as ``executor`` runs them, with their work directories: in
    its process they share the opened upstream and compiled training steps; a Ray task
    gets only the config and its expert (``train_alone``)."""
    if config.job not in jobs.JOBS:
        raise ValueError(f"unknown job {config.job!r}; choose one of {', '.join(jobs.JOBS)}")
    config = resolved_config(config)
    tree = work_tree.WorkTree(config.workdir)
    data = jobs.Upstream.open(config)
    work = planned_jobs(config, data)
    dirs = [str(tree.job(config.job, expert).path) for _, expert in work]
    if not executor.in_process:
        return dirs, [fanout.Job(job.name, train_alone, (config, e)) for job, e in work]
    strategy = distribute.make_strategy(config.strategy, config.tpu_address)
    compiled = loop.CompiledJobs()
    return dirs, [
        fanout.Job(job.name, train_job, (config, data, job, expert, strategy, compiled))
        for job, expert in work
    ]


def run(config, executor: fanout.Executor | None = None, overrides=None) -> dict[str, dict]:
    """Runs the configured job (every full expert when none is named), or with
    ``job="all"`` every job in dependency order (``job_configs``), each a job of
    ``executor`` (in this process by default); returns the metrics per work directory."""
    executor = executor or fanout.LocalExecutor()
    if config.job != upstream.ALL:
        return run_job(config, executor)
    first, *rest = job_configs(config, overrides)
    results = run_job(first, executor)  # B: every other job starts from it
    planned = [executor_jobs(c, executor) for c in rest]
    dirs = [d for job_dirs, _ in planned for d in job_dirs]
    tasks = [task for _, job_tasks in planned for task in job_tasks]
    results.update(zip(dirs, executor.map(tasks, what="upstream jobs"), strict=True))
    return results


def run_job(config, executor: fanout.Executor) -> dict[str, dict]:
    """One job config's jobs (B on Ray Train workers when ``baseline_workers`` > 1)."""
    if config.job == "baseline" and config.baseline_workers > 1:
        return train_on_workers(config, executor)
    dirs, tasks = executor_jobs(config, executor)
    return dict(zip(dirs, executor.map(tasks, what=config.job), strict=True))


def job_configs(config, overrides=None) -> list:
    """The whole upstream's job configs, B first: each job file's config at
    ``config.preset`` with ``overrides`` set (dotted fields to values; by default the
    fields in which ``config`` differs from ``experts/configs/upstream.py``'s)."""
    if overrides is None:
        default = recorded.flatten(upstream.get_config(config.preset).to_dict())
        overrides = {
            field: value
            for field, value in recorded.flatten(config.to_dict()).items()
            if default.get(field) != value
        }
    overrides = {k: v for k, v in overrides.items() if k not in ("job", "preset")}
    configs = []
    for job in upstream.JOBS:
        one = importlib.import_module(f"experts.configs.{job}").get_config(config.preset)
        unknown = [field for field in overrides if field not in recorded.flatten(one.to_dict())]
        if unknown:
            raise ValueError(f"--config.{unknown[0]}: the {job} job's config has no such field")
        one.update_from_flattened_dict(overrides)
        configs.append(one)
    return configs


def worker_train(config, expert: str | None) -> dict:
    """One Ray Train worker's share of a job: the strategy from Ray Train's TF_CONFIG;
    the driver holds the job's directory and has recorded its config."""
    data = jobs.Upstream.open(config)
    [(job, _)] = planned_jobs(config, data)
    strategy = distribute.make_strategy("multi_worker_mirrored")
    jobdir = work_tree.WorkTree(config.workdir).job(config.job, expert)
    return loop.train(job, config.train, jobdir.path, strategy)


def train_on_workers(config, executor: fanout.Executor) -> dict[str, dict]:
    """B on ``config.baseline_workers`` Ray Train workers, each given the executor's
    resources; this process holds the job's directory meanwhile."""
    if executor.in_process:
        raise ValueError("--config.baseline_workers > 1 needs --executor=ray")
    config = resolved_config(config)
    data, expert = jobs.Upstream.open(config), config.expert or None
    jobdir = work_tree.WorkTree(config.workdir).job(config.job, expert)
    with jobdir.lock():
        jobdir.start(recorded_config(config, data, expert), config.get("restart", False))
        if jobdir.finished():
            return {str(jobdir.path): jobdir.metrics()}
        storage = str(jobdir.path / "ray_train")
        metrics = fanout.ray_train.run(
            worker_train, (config, expert), config.baseline_workers, executor.resources,
            executor.address, storage,
        )  # fmt: skip
    return {str(jobdir.path): metrics}


def resolved_config(config):
    """``config`` with its directories absolute (a job may run in another process,
    whose working directory is not this one) and B's defaulting to the work tree's;
    checked field by field (``upstream.RULES``)."""
    config = config.copy_and_resolve_references()
    for field in ("workdir", "baseline_workdir", "data_dir"):
        if config.get(field):
            setattr(config, field, os.path.abspath(config[field]))
    default = work_tree.WorkTree(config.workdir).baseline.path
    config.baseline_workdir = config.baseline_workdir or str(default)
    config_rules.check(config, upstream.RULES)
    return config


def main(config):
    overrides = {**fanout.flags.overrides(), "workdir": config.workdir}
    execute(config, fanout.flags.executor, overrides)


def execute(config, executor=None, overrides=None) -> dict[str, dict]:
    """``run``, with a user's mistake (a changed setting, a missing B, a bad name) ended
    in one line naming it, as the binary reports it. ``executor`` is an executor, or a
    function that makes one (so that making it, e.g. reaching a Ray cluster, fails the
    same way)."""
    with cli.user_errors("experts.train", (work_tree.ConfigChanged,)):
        config_rules.check(config, upstream.RULES)
        executor = fanout.resolve(executor)
        return run(config, executor, overrides)


# Old spellings, each refused in one line naming the new one.
RENAMED = {
    "data_dir": "--config.data_dir",
    "config.data.data_dir": "--config.data_dir",
    "jobs": "--config.job (one job, or all)",
    "preset": "--config=experts/configs/upstream.py:<preset>",
    "baseline_workers": "--config.baseline_workers",
    "data_name": "--config.data.name",
}

if __name__ == "__main__":
    # Defined only when run as a program: tests import run(), and other binaries'
    # modules (hub_export.export) define their own --config in the same process.
    fanout.flags.launch(
        main, "experts.train", "experts/configs/upstream.py:cpu", executor=True, renamed=RENAMED
    )

r"""The whole upstream in dependency order: B, then every full expert, the adapter
experts and the EPN, which need only B and not one another.

    python -m experts.pipeline --preset=cpu --workdir=runs/demo/upstream --data_dir=runs/tfds
    python -m experts.pipeline --preset=paper --workdir=... --data_dir=... \
        --executor=ray --ray_address=<head>:6379 --job_gpus=8 --baseline_workers=4

``--jobs`` picks among baseline, full_experts, adapter_experts and epn (all by default),
each with its ``experts/configs/<job>.py`` config at ``--preset``. With
``--executor=ray`` every full expert, the adapter job and the EPN are Ray tasks that
run side by side once B is done; ``--baseline_workers=N`` trains B itself on N Ray
Train workers under MultiWorkerMirroredStrategy (``fanout.ray_train``). Every job
resumes from its checkpoints, so rerunning the command finishes what is missing.
For settings beyond the preset, run ``experts.train`` per job with ``--config.*``.
"""

from __future__ import annotations

import importlib

from absl import app, flags

import fanout
import fanout.flags
import fanout.ray_train
from experts import jobs, train, work_tree
from experts.training import distribute, loop
from fanout import cli

JOBS = ("baseline", "full_experts", "adapter_experts", "epn")


def job_config(name: str, preset: str, workdir: str, data_dir: str | None, overrides=None):
    """The job's config at ``preset``; ``overrides`` maps dotted fields to values."""
    if name not in JOBS:
        raise ValueError(f"unknown job {name!r} in --jobs; choose from {', '.join(JOBS)}")
    config = importlib.import_module(f"experts.configs.{name}").get_config(preset)
    config.workdir = workdir
    if data_dir is not None:
        config.data.data_dir = data_dir
    for field, value in (overrides or {}).items():
        *path, last = field.split(".")
        owner = config
        for part in path:
            owner = owner[part]
        if last not in owner:
            raise ValueError(f"{name}: no config field {field!r} to set")
        owner[last] = value
    return train.resolved_config(config)


def worker_train(config, expert: str | None) -> dict:
    """One Ray Train worker's share of a job: the strategy from Ray Train's TF_CONFIG;
    the driver holds the job's directory and has recorded its config."""
    data = jobs.Upstream.open(config)
    [(job, _)] = train.planned_jobs(config, data)
    strategy = distribute.make_strategy("multi_worker_mirrored")
    jobdir = work_tree.WorkTree(config.workdir).job(config.job, expert)
    return loop.train(job, config.train, jobdir.path, strategy)


def train_on_workers(config, workers: int, resources: fanout.Resources, address: str) -> dict:
    """B (or any one-job config) on ``workers`` Ray Train workers, each given
    ``resources``; this process holds the job's directory meanwhile."""
    data, expert = jobs.Upstream.open(config), config.expert or None
    jobdir = work_tree.WorkTree(config.workdir).job(config.job, expert)
    with jobdir.lock():
        jobdir.start(train.recorded_config(config, data, expert), config.get("restart", False))
        if jobdir.finished():
            return jobdir.metrics()
        storage = str(jobdir.path / "ray_train")
        args = (config, expert)
        return fanout.ray_train.run(worker_train, args, workers, resources, address, storage)


def later_jobs(configs, executor: fanout.Executor) -> list[fanout.Job]:
    """The jobs after B, as the executor runs them: one per full expert, the adapter
    job, the EPN."""
    return [job for config in configs for job in train.executor_jobs(config, executor)[1]]


def run(
    names,
    preset: str,
    workdir: str,
    data_dir: str | None,
    executor: fanout.Executor,
    baseline_workers: int = 1,
    resources: fanout.Resources = fanout.executors.ONE_CPU,
    address: str = "",
    overrides=None,
):
    """The named jobs at ``preset`` in ``workdir``: B first (on ``baseline_workers``
    Ray Train workers with ``resources`` each, when more than one), then the rest as
    ``executor``'s jobs. ``overrides``: dotted config fields set in every job's config.
    """
    if not names:
        raise ValueError(f"--jobs names no job; choose from {', '.join(JOBS)}")
    configs = [job_config(n, preset, workdir, data_dir, overrides) for n in names]
    first = [c for c in configs if c.job == "baseline"]
    rest = [c for c in configs if c.job != "baseline"]
    if first and baseline_workers > 1:
        if executor.in_process:
            raise ValueError("--baseline_workers > 1 needs --executor=ray")
        train_on_workers(first[0], baseline_workers, resources, address)
    elif first:
        train.run(first[0], executor)
    executor.map(later_jobs(rest, executor), what="upstream jobs")


def main(argv):
    del argv  # flags only: cli.flags_parser refuses a positional argument
    f = flags.FLAGS
    with cli.user_errors("experts.pipeline", (work_tree.ConfigChanged,)):
        names = [n.strip() for n in f.jobs.split(",") if n.strip()]
        executor = fanout.flags.executor()
        resources = fanout.Resources(f.job_cpus, f.job_gpus, f.job_memory_gb)
        overrides = {"data.name": f.data_name} if f.data_name else {}
        run(names, f.preset, f.workdir, f.data_dir, executor, f.baseline_workers, resources,
            f.ray_address, overrides)  # fmt: skip


if __name__ == "__main__":
    flags.DEFINE_string("jobs", ",".join(JOBS), "Comma-separated upstream jobs to run.")
    flags.DEFINE_enum("preset", "cpu", ["smoke", "cpu", "paper"], "The jobs' config preset.")
    flags.DEFINE_string("workdir", "runs/upstream", "The upstream work tree.")
    flags.DEFINE_string("data_dir", None, "tfds directory of the prepared upstream.")
    flags.DEFINE_string("data_name", None, "tfds name of the upstream (the preset's default).")
    flags.DEFINE_integer(
        "baseline_workers", 1, "Ray Train workers for B (--executor=ray).", lower_bound=1
    )
    fanout.flags.define()
    app.run(main, flags_parser=cli.flags_parser("experts.pipeline"))

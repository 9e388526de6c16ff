"""The executor flags every fanning-out binary defines (in its ``__main__`` block, so
that importing a binary's module never claims flag names):

    --executor=local|ray   --ray_address=<host:port or ''>
    --job_cpus=1 --job_gpus=0 --job_memory_gb=0
"""

from __future__ import annotations

from collections.abc import Callable

from absl import flags

from fanout import executors


def define() -> None:
    flags.DEFINE_enum(
        "executor",
        "local",
        list(executors.EXECUTORS),
        "Where independent jobs run: in this process, or as Ray tasks.",
    )
    flags.DEFINE_string(
        "ray_address", "", "An existing Ray cluster's address; empty starts one on this machine."
    )
    flags.DEFINE_float("job_cpus", 1.0, "CPUs per job (Ray).", lower_bound=0)
    flags.DEFINE_float("job_gpus", 0.0, "GPUs per job (Ray).", lower_bound=0)
    flags.DEFINE_float(
        "job_memory_gb", 0.0, "Memory reserved per job in GiB (Ray; 0: none).", lower_bound=0
    )


def executor(log: Callable[[str], None] = print) -> executors.Executor:
    """The executor the flags name."""
    f = flags.FLAGS
    resources = executors.Resources(f.job_cpus, f.job_gpus, f.job_memory_gb)
    return executors.make_executor(f.executor, f.ray_address, resources, log)

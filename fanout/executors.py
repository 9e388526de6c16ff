"""Executors: run a list of independent jobs and return their results in order.

* ``LocalExecutor`` (``--executor=local``, the default) runs them one after another in
  this process, so jobs can share what is costly to build (loaded data, compiled steps).
* ``RayExecutor`` (``--executor=ray``) makes each job a Ray task with its own resources
  (CPUs, GPUs, memory), on a local Ray started here (``--ray_address=''``) or on an
  existing cluster. A task whose worker dies is retried (``max_retries``); the job then
  resumes from its own checkpoint or result files, which is what makes retrying safe.
  An exception raised by a job is not retried: it is the job's error, raised here.
  Jobs that no node of the cluster can host would wait forever: asking for more than
  any node offers (say ``--job_gpus=1`` on CPU machines) is refused when it starts.

Both print one line per finished job, with a count and an ETA.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

EXECUTORS = ("local", "ray")


# The flag (fanout.flags) that sets each of Resources' fields, by Ray's resource name.
_FLAGS = {
    "CPU": ("--job_cpus", "cpus"),
    "GPU": ("--job_gpus", "gpus"),
    "memory": ("--job_memory_gb", "memory_gb"),
}


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one job asks of a Ray node (the local executor ignores it)."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 0.0  # 0: no reservation

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))

    def __post_init__(self):
        for flag, field in _FLAGS.values():
            value = getattr(self, field)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{flag}={value}: must be a finite number >= 0")

    def ray_options(self) -> dict:
        options = {"num_cpus": self.cpus, "num_gpus": self.gpus}
        # TensorFlow's thread pools sized to the reservation, through the environment
        # the worker starts with: Ray keeps one pool of workers per environment, so a
        # reused worker always has the thread count of the jobs it serves (CPU kernels
        # split their sums by thread, so results depend on it to float rounding).
        threads = str(self.threads)
        options["runtime_env"] = {
            "env_vars": {
                "TF_NUM_INTRAOP_THREADS": threads,
                "TF_NUM_INTEROP_THREADS": threads,
                "OMP_NUM_THREADS": threads,
            }
        }
        if self.memory_gb:
            options["memory"] = int(self.memory_gb * 2**30)
        return options


ONE_CPU = Resources()


def _describe(amounts: Mapping[str, float]) -> str:
    parts = [f"{amounts.get('CPU', 0):g} CPUs", f"{amounts.get('GPU', 0):g} GPUs"]
    return ", ".join(parts + [f"{amounts.get('memory', 0) / 2**30:.1f} GiB memory"])


def check_resources(resources: Resources, nodes: Sequence[Mapping[str, float]]) -> None:
    """Raises ``RuntimeError`` naming the flags when no node (each a mapping of Ray
    resource names to amounts) offers every resource one job asks: Ray would keep
    such jobs pending forever."""
    amounts = {"CPU": resources.cpus, "GPU": resources.gpus, "memory": resources.memory_gb * 2**30}
    asked = {k: v for k, v in amounts.items() if v > 0}
    if any(all(node.get(k, 0) >= v for k, v in asked.items()) for node in nodes):
        return
    short = [k for k, v in asked.items() if all(node.get(k, 0) < v for node in nodes)]
    named = ", ".join(
        f"{_FLAGS[k][0]}={getattr(resources, _FLAGS[k][1]):g}" for k in short or asked
    )
    total = {k: sum(node.get(k, 0) for node in nodes) for k in _FLAGS}
    largest = {k: max((node.get(k, 0) for node in nodes), default=0) for k in _FLAGS}
    raise RuntimeError(
        f"{named}: no node of the Ray cluster offers what one job asks ({_describe(amounts)}); "
        f"the cluster has {len(nodes)} node(s) with {_describe(total)} in all, at most "
        f"{_describe(largest)} on one: ask for less, or add a node that has it"
    )


@dataclasses.dataclass(frozen=True)
class Job:
    """``fn(*args, **kwargs)``, named ``name`` in progress lines. For Ray, ``fn`` must be
    importable (a module-level function) and its arguments picklable."""

    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class Executor(Protocol):
    in_process: bool

    def map(self, jobs: Sequence[Job], what: str = "jobs") -> list: ...


class Progress:
    """One line per finished job: ``<what> 3/10 done: <name> (12s; eta 84s)``."""

    def __init__(self, what: str, total: int, log: Callable[[str], None]):
        self.what, self.total, self.log = what, total, log
        self.done, self.start = 0, time.perf_counter()

    def finished(self, name: str, seconds: float) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        self.log(
            f"{self.what} {self.done}/{self.total} done: {name} ({seconds:.0f}s; eta {eta:.0f}s)"
        )


class LocalExecutor:
    """Runs jobs in order in this process."""

    in_process = True

    def __init__(self, log: Callable[[str], None] = print):
        self.log = log

    def map(self, jobs: Sequence[Job], what: str = "jobs") -> list:
        progress, results = Progress(what, len(jobs), self.log), []
        for job in jobs:
            start = time.perf_counter()
            results.append(job.fn(*job.args, **job.kwargs))
            progress.finished(job.name, time.perf_counter() - start)
        return results


def _timed_call(fn, args, kwargs, threads: int):
    """A job in a Ray worker: TensorFlow's thread pools sized to the job's CPUs (they
    would otherwise take every core of the node, whatever the reservation; the
    worker's environment says the same, see ``Resources.ray_options``), then ``fn``;
    returns (result, seconds)."""
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # a reused worker: TensorFlow is initialised already
        pass
    start = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - start


def start_ray(address: str = "", num_cpus: int | None = None) -> None:
    """Connects to the Ray cluster at ``address``, or starts one on this machine bound
    to the loopback interface, with no dashboard and no usage reports."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray starts its workers at nice 15, as if they were background chores; here they
    # run the jobs themselves (training, export, fine-tuning), which any other busy
    # process would otherwise starve. Its own job manager sets 0 for the same reason.
    os.environ.setdefault("RAY_worker_niceness", "0")
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        # A Ray started here serves this machine only. Ray resolves 127.0.0.1 given as
        # the node's address to the machine's network address, and its servers listen
        # on every interface; in its single-machine mode (the one it uses where it
        # supports no clusters) every process binds and reports the loopback address.
        # The processes it starts read the setting from their environment; this one
        # read it when it imported Ray, so its copy is set too (Ray has no public
        # switch for it; tests/fanout/test_ray.py lists the sockets to hold it to it).
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=True,
        )


class RayExecutor:
    """Runs each job as a Ray task; see the module docstring."""

    in_process = False

    def __init__(
        self,
        address: str = "",
        resources: Resources = ONE_CPU,
        max_retries: int = 3,
        log: Callable[[str], None] = print,
    ):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "--executor=ray needs Ray: pip install '.[ray]' (or pass --executor=local)"
            ) from None
        self.address, self.resources, self.max_retries, self.log = (
            address,
            resources,
            max_retries,
            log,
        )
        start_ray(address)
        import ray

        alive = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        check_resources(resources, alive)

    def map(self, jobs: Sequence[Job], what: str = "jobs") -> list:
        import ray

        remote = ray.remote(_timed_call)
        refs = []
        for job in jobs:
            options = dict(
                self.resources.ray_options(),
                max_retries=self.max_retries,
                retry_exceptions=False,
                name=job.name,
            )
            refs.append(
                remote.options(**options).remote(
                    job.fn, job.args, dict(job.kwargs), self.resources.threads
                )
            )
        index = {ref: i for i, ref in enumerate(refs)}
        results: list = [None] * len(jobs)
        progress, pending = Progress(what, len(jobs), self.log), list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            i = index[ready[0]]
            try:
                results[i], seconds = ray.get(ready[0])
            except ray.exceptions.RayTaskError as error:
                for ref in pending:
                    ray.cancel(ref)
                raise error.as_instanceof_cause() from None
            progress.finished(jobs[i].name, seconds)
        return results


def resolve(executor: Executor | Callable[[], Executor] | None) -> Executor:
    """An executor from an executor, a function that makes one (so that a binary makes
    it, and may fail reaching a cluster, where its other user errors are reported),
    or None: the local one."""
    if executor is None:
        return LocalExecutor()
    return executor if hasattr(executor, "map") else executor()


def make_executor(
    name: str = "local",
    address: str = "",
    resources: Resources = ONE_CPU,
    log: Callable[[str], None] = print,
) -> Executor:
    if name == "local":
        return LocalExecutor(log)
    if name == "ray":
        return RayExecutor(address, resources, log=log)
    raise ValueError(f"unknown --executor={name!r}; choose one of {', '.join(EXECUTORS)}")

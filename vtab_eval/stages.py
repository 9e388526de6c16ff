"""A transfer run's work as jobs, on whichever executor runs them: one plan for both.

The runner hands its unfinished tasks to ``run``, which emits the stages as jobs:

1. feature extraction, one job per module (every unfinished task's splits, and the
   probes);
2. the oracle's screening, one job per candidate of the selectors that fine-tune
   candidates, screening it on every unfinished task;
3. selection, here (the proxies read the cached features: seconds), and the features
   the heads ensemble needs of its candidates (jobs as in stage 1);
4. fine-tuning, one job per picked module, running the protocol on every task it was
   picked for (each (task, module) pair once however many selectors picked it), and
   keeping the runs' probabilities on the tasks whose fine-tuned ensemble it is a
   candidate of (``ensembles``).

Jobs are per module, not per (task, module), because loading a module and tracing its
training step costs as much as a few fine-tuning runs: a job makes its module ready
once and reuses it for all its tasks, restoring the initial weights between runs. A
module of a program already traced in the process (B's and the full experts') is made
ready by loading its weights into that FineTuner (``protocol.TunerCache``).

The local executor runs the jobs one after another in this process, on the runner's
own ``Tuning`` (``worker_tuning`` returns it: same run directory, same config); Ray
runs them as tasks, each worker keeping one ``Tuning`` between its jobs. Either way the
jobs write the files the runner then reads back to assemble each task's result.

The tasks' data is prepared here first. Every job writes through ``files``
(atomically) and holds the lock of the file it writes, so a retried job, or two given
the same work, compute it once. The paths in the config (``data_dir``, ``probes``) are
made absolute, and must be readable by every worker: on a cluster, a shared file
system.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import fanout
from fanout.worker_cache import WorkerCache
from vtab_eval import ensembles, run_dir, tasks
from vtab_eval.finetune import runs as tuning
from vtab_eval.pool import expert_pool as pool
from vtab_eval.report import probes

PROBES = "probes"  # a features job's stand-in for the probe images' task spec

# A worker's Tuning (with the fine-tuners it has built, each a loaded module and a
# traced step), kept between its jobs of one run directory and config; in this
# process, the runner's own.
_WORKER_TUNING = WorkerCache("vtab_eval.stages")


def worker_tuning(config, workdir: str, log=print) -> tuning.Tuning:
    return _WORKER_TUNING.get(
        (str(workdir), config.to_json(sort_keys=True)),
        lambda: tuning.Tuning.for_run(config, run_dir.RunDir(Path(workdir)), log),
    )


def _task(config, spec: str):
    if spec == PROBES:
        return probes.ProbeImages(config.probes)
    return tasks.get_task(spec, data_dir=config.data_dir or None)


def features_job(config, workdir: str, handle: str, work: list[tuple[str, str]]) -> int:
    """One module's features of ``work``'s (task spec, split) pairs, into the cache."""
    store = worker_tuning(config, workdir).store
    for spec, split in work:
        store.outputs(handle, _task(config, spec), split)
    return len(work)


def finetune_job(
    config, workdir: str, specs: list[str], module: pool.Module, screen, keep=()
) -> int:
    """The protocol's result files of one module on the tasks ``specs`` (keeping the
    runs' probabilities on those in ``keep``), or the oracle's screenings of it: one
    job per module, so a worker loads the module and traces its steps once for all of
    them, whatever the executor's order."""
    t = worker_tuning(config, workdir)
    for spec in specs:
        task = _task(config, spec)
        path = t.result_path(task, module, screen)
        with fanout.hold(path.parent, wait=True, name=f".{path.name}.lock"):
            t.finetune_expert(task, module, screen, keep=spec in keep)  # done: read back
    return len(specs)


def portable_config(config):
    """The config with its local paths absolute: a worker's working directory need not
    be this process's."""
    config = config.copy_and_resolve_references()
    for field in ("data_dir", "probes"):
        if config.get(field):
            config[field] = os.path.abspath(config[field])
    return config


def _portable(module: pool.Module) -> pool.Module:
    """The module with its handle absolute when it is a local path (as for the config)."""
    if not Path(module.handle).exists():
        return module
    return dataclasses.replace(module, handle=os.path.abspath(module.handle))


def run(runner, todo: list, executor: fanout.Executor) -> None:
    """Stages 1-4 of the module docstring for the unfinished tasks ``todo``."""
    config, workdir = portable_config(runner.config), str(runner.workdir.resolve())
    for task in todo:  # here, once: jobs preparing one dataset at once would collide
        task.prepare()
    missing = runner.missing_features(todo)
    executor.map(_features_jobs(runner, missing, config, workdir), what="features")
    screen = runner.tuning.oracle_screening()
    oracle = {
        module.id: (
            module,
            [t for t in todo if not runner.tuning.result_path(t, module, screen).exists()],
            set(),
        )
        for module in runner.oracle_candidates(todo)
    }
    executor.map(_module_jobs("screen", oracle, config, workdir, screen), what="oracle screening")
    heads = _features_jobs(runner, ensembles.missing_head_features(runner, todo), config, workdir)
    executor.map(heads, what="the heads ensemble's features")
    executor.map(
        _module_jobs("fine-tune", _picks(runner, todo), config, workdir, None), what="fine-tuning"
    )


def _features_jobs(runner, missing, config, workdir: str) -> list[fanout.Job]:
    """One ``features_job`` per module of ``missing`` ((module, [(task, split)]))."""
    return [
        fanout.Job(
            f"features {module.id}",
            features_job,
            (config, workdir, _portable(module).handle, [(_spec(runner, t), s) for t, s in work]),
        )
        for module, work in missing
    ]


def _picks(runner, todo: list) -> dict[str, tuple]:
    """Module id -> (module, its tasks to fine-tune on, the specs of those keeping the
    runs' probabilities), in order of first pick: every selector's pick, and the
    candidates of the fine-tuned ensemble."""
    wanted: dict[tuple[str, str], tuple] = {}  # (module id, spec) -> (module, task, keep)
    for task in todo:
        for name in runner.selectors:
            if not ensembles.combines(name):
                module = runner.pool.get(runner.select(task, name).pick)
                wanted.setdefault((module.id, task.spec), (module, task, False))
        for module in ensembles.finetuning(runner, task):
            wanted[module.id, task.spec] = (module, task, True)
    picks: dict[str, tuple] = {}
    for module, task, keep in wanted.values():
        if not runner.tuning.is_done(task, module, keep=keep):
            _, tasks_of, kept = picks.setdefault(module.id, (module, [], set()))
            tasks_of.append(task)
            if keep:
                kept.add(task.spec)
    return picks


def _module_jobs(kind: str, work: dict, config, workdir: str, screen) -> list[fanout.Job]:
    """One ``finetune_job`` per module of ``work`` (id -> (module, its tasks to do, the
    specs of those keeping probabilities))."""
    return [
        fanout.Job(f"{kind} {module.id} on {len(todo)} task(s)", finetune_job,
                   (config, workdir, [t.spec for t in todo], _portable(module), screen, keep))
        for module, todo, keep in work.values()
        if todo
    ]  # fmt: skip


def _spec(runner, task) -> str:
    return PROBES if task is runner.probe_images else task.spec

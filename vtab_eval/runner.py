"""The evaluation loop behind `vtab_eval.main`: per task, run every selector, fine-tune
every expert they pick, record the result; then write the report.

The work directory's layout is `run_dir`'s; every file is written atomically, so a
crash loses at most the step in progress and a rerun resumes there.

A finished task (its result.json names every requested selector) is not redone. The
work of the unfinished ones (features module by module, the screening fine-tunings of
selectors that fine-tune candidates, the fine-tuning of each pick) runs as jobs on the
run's executor (`stages`), the same plan in this process as on Ray; the per-task loop
then reads back what the jobs wrote and records each task's result.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import ml_collections

import fanout
from vtab_eval import ensembles, files, run_dir, selection, stages, tasks
from vtab_eval.finetune import protocol
from vtab_eval.pool import expert_pool as pool
from vtab_eval.report import probes
from vtab_eval.report import tables as report


def resolve_suite(suite: str) -> list[str]:
    """A suite name (`embedded`, `vtab1k`) or ';'-separated task specs."""
    suite = suite.strip()
    if suite in tasks.suite_names():
        return list(tasks.suite_specs(suite))
    specs = tasks.split_specs(suite)
    if not specs:
        raise ValueError(f"--config.suite {suite!r} names no tasks; suites: {tasks.suite_names()}")
    for spec in specs:
        tasks.parse_spec(spec)  # Fails early, naming the bad spec.
    return specs


def make_selector(name: str, config: ml_collections.ConfigDict) -> selection.Selector:
    return selection.selector_class(name).from_config(config.selection)


@dataclasses.dataclass
class Runner:
    config: ml_collections.ConfigDict
    pool: pool.Pool
    specs: list[str]
    selectors: list[str]
    workdir: Path
    log: Callable[[str], None] = print
    executor: fanout.Executor | None = None  # the local one, logging to ``log``

    def __post_init__(self):
        self.workdir = Path(self.workdir)
        self.executor = self.executor or fanout.LocalExecutor(self.log)
        self.dir = run_dir.RunDir(self.workdir)
        # The jobs' Tuning when they run in this process: one store, one set of tuners.
        self.config = stages.portable_config(self.config)
        self.tuning = stages.worker_tuning(self.config, self.workdir.resolve(), self.log)
        self.store = self.tuning.store
        folder = self.config.get("probes", "")
        self.probe_images = probes.ProbeImages(folder) if folder else None
        for name in self.selectors:
            selection.selector_class(name)  # Fails early, naming it and the known ones.
        ensembles.check_size(self.config, self.pool)

    @property
    def tuners(self) -> protocol.TunerCache | None:
        return self.tuning.tuners

    def is_done(self, spec: str) -> bool:
        """Whether the task ``spec`` names has a result of every selector: looked up by
        what the task is (``tasks.task_key``: for an image folder, its absolute path
        and a fingerprint of its files), never by the spec's text."""
        result = self.dir.task(tasks.task_key(spec)).result()
        if result is None or not set(self.selectors) <= set(result["methods"]):
            return False
        return all(
            ensembles.is_current(result["methods"][name], self.config)
            for name in self.selectors
            if ensembles.combines(name)
        )

    def _modules_needed(self) -> list[pool.Module]:
        needs = {selection.SELECTORS[name].needs for name in self.selectors}
        if self.config.ensemble:  # the ranking proxy's
            needs.add(selection.SELECTORS[self.config.ensemble_proxy].needs)
        needed = list(self.pool.experts) if "features" in needs else []
        for need, module in (("epn", self.pool.epn), ("classifier", self.pool.upstream_classifier)):
            if need in needs and module is not None:
                needed.append(module)
        return needed

    def missing_features(self, todo: list) -> list[tuple[pool.Module, list]]:
        """(module, [(task, split)]) for every needed module's features not cached yet,
        of the unfinished tasks and of the probes (when `config.probes` names them)."""
        modules = self._modules_needed()
        jobs = [(t, self.config.selection.split) for t in todo]
        if self.probe_images is not None:
            modules += [e for e in self.pool.experts if e not in modules]
            jobs.append((self.probe_images, "all"))
        out = []
        for module in modules:
            missing = [
                (t, split)
                for t, split in jobs
                if not self.store.cache_path(module.handle, t, split).exists()
                and (t is not self.probe_images or module in self.pool.experts)
            ]
            if missing:
                out.append((module, missing))
        return out

    def write_probes(self) -> None:
        """The specialisation benchmark from the features embedded with the tasks', into
        `<report dir>/probes` (where the report finds it)."""
        if self.probe_images is None:
            return
        out = report.report_dir(self.workdir, self.config) / report.PROBES_DIR
        record = probes.write(self.pool, self.probe_images, self.store, out)
        self.log(f"{record['summary_line']} ({out}/probes.md)")

    def oracle_candidates(self, todo: list) -> list[pool.Module]:
        """The experts the selectors scoring by fine-tuning (the oracle) fine-tune on
        every task, in pool order."""
        if not todo:
            return []
        ids = {
            i
            for name in self.selectors
            if selection.selector_class(name).fine_tunes_candidates
            for i in make_selector(name, self.config).candidates(self.pool)
        }
        return [m for m in self.pool.experts if m.id in ids]

    def select(self, task, name: str) -> selection.SelectionResult:
        task_dir = self.dir.task(task.key)
        earlier = task_dir.selection(name)
        if earlier is not None:
            return selection.SelectionResult.from_json(earlier)
        path = task_dir.selection_path(name)
        ctx = selection.Context(
            self.pool,
            self.store,
            split=self.config.selection.split,
            seed=self.config.seed,
            # For the selectors that fine-tune candidates (fine_tunes_candidates).
            finetune=lambda expert: self.tuning.screen_expert(task, expert),
        )
        result = make_selector(name, self.config).select(task, ctx)
        result.write(path)
        return result

    def run_task(self, task) -> dict:
        start = time.perf_counter()
        methods = {}
        for name in self.selectors:
            if ensembles.combines(name):
                methods[name] = ensembles.entry(self, task, name)
                self.log(f"  {name}: {ensembles.summary(methods[name])}")
                continue
            sel = self.select(task, name)
            self.log(
                f"  {name}: picks {sel.pick} (score {sel.scores[sel.pick]:.4f}, {sel.cost_seconds:.1f}s)"
            )
            tuned = self.tuning.finetune_expert(task, self.pool.get(sel.pick))
            methods[name] = {
                "pick": sel.pick,
                "selection_seconds": sel.cost_seconds,
                "finetune_seconds": tuned["seconds"],
                "test_accuracies": tuned["test_accuracies"],
                "median_test_accuracy": tuned["median_test_accuracy"],
            }
        # Methods of earlier runs with other selectors are kept: results accumulate.
        earlier = self.dir.task(task.key).result() or {}
        result = {
            "task": task.spec,
            "group": task.group,
            # matched / weak / unrelated, or None when the task declares none.
            "relation": getattr(task, "relation", None),
            "num_classes": task.num_classes,
            "methods": {**earlier.get("methods", {}), **methods},
            "seconds": time.perf_counter() - start,
        }
        files.write_json(self.dir.task(task.key).result_path, result)
        return result

    def run(self) -> dict:
        """Every unfinished task, then the probes and the report; returns the report's
        paths. Holds the work directory's lock throughout."""
        with self.dir.lock():
            return self._run()

    def _run(self) -> dict:
        record = run_dir.run_record(self.config, self.pool.ids)
        self.dir.check_run(record)
        todo = [s for s in self.specs if not self.is_done(s)]
        self.log(
            f"{len(self.specs)} tasks ({len(self.specs) - len(todo)} finished earlier), "
            f"{len(self.pool.experts)} experts, selectors {','.join(self.selectors)}"
        )
        data_dir = self.config.data_dir or None
        task_objects = {s: tasks.get_task(s, data_dir=data_dir) for s in todo}
        if task_objects:
            self.tuning.open_tuners(task_objects.values())  # Fails early on too many classes.
        # Only now, with the tasks and the pool checked, is the directory tied to them.
        self.dir.record_run(record)
        stages.run(self, list(task_objects.values()), self.executor)  # the loop assembles
        start = time.perf_counter()  # The eta extrapolates the per-task loop only.
        remaining = len(task_objects)
        for index, spec in enumerate(self.specs, 1):
            where = f"[{index}/{len(self.specs)}] {spec}"
            if spec not in task_objects:
                self.log(f"{where}: finished earlier")
                continue
            self.log(where)
            result = self.run_task(task_objects[spec])
            remaining -= 1
            done = len(task_objects) - remaining
            summary = ", ".join(
                f"{m} {r['median_test_accuracy']:.3f}" for m, r in result["methods"].items()
            )
            eta = (time.perf_counter() - start) / done * remaining
            self.log(f"{where}: {summary} ({result['seconds']:.0f}s; eta {eta:.0f}s)")
        self.write_probes()
        paths = report.write_report(self.workdir, self.config, methods=self.selectors)
        self.log(f"report: {paths['markdown']} ({time.perf_counter() - start:.0f}s in all)")
        return paths


def run(
    config: ml_collections.ConfigDict,
    log: Callable[[str], None] = print,
    executor: fanout.Executor | None = None,
) -> dict:
    """Runs the configured evaluation; `config.pool`, `suite`, `selectors` and `workdir`
    say what (the binary copies its flags into them). The work runs as jobs on
    ``executor`` (`stages`; the local one by default)."""
    if not config.pool:
        raise ValueError("no pool: pass --config.pool=<hub root or handles>")
    config = run_dir.expand_user_paths(config)
    selectors = [s.strip() for s in config.selectors.split(",") if s.strip()]
    if not selectors:
        raise ValueError(
            f"--config.selectors names no selector; choose from {', '.join(selection.SELECTORS)}"
        )
    selectors = ensembles.run_methods(config, selectors)
    runner = Runner(
        config=config,
        pool=pool.open_pool(config.pool),
        specs=resolve_suite(config.suite),
        selectors=selectors,
        workdir=Path(config.workdir),
        log=log,
        executor=fanout.resolve(executor) if executor is not None else None,
    )
    return runner.run()

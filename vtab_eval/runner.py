"""The evaluation loop behind `vtab_eval.main`: per task, run every selector, fine-tune
every expert they pick, record the result; then write the report.

The work directory's layout is `run_dir`'s; every file is written atomically, so a
crash loses at most the step in progress and a rerun resumes there.

A finished task (its result.json names every requested selector) is not redone.
Fine-tuning results are shared between selectors that pick the same expert: the
protocol is seeded by (seed, task) only, so two methods picking one expert would get
the very same runs anyway; every expert on a task also sees the same batches, which
makes the comparison between methods paired.

Before the per-task loop, the features every selector needs are computed module by
module (each module loaded once for all tasks, instead of once per task). Fine-tuning
keeps the recently used modules' FineTuners (`protocol.TunerCache`, size
`config.finetune.tuner_cache`): one per module, whatever the task, so the baseline is
loaded and traced once for the suite. The oracle fine-tunes every candidate on every
task; it runs before the per-task loop too, module by module, so each module is built
once (its per-(task, module) files make it resumable), and its selection then reads
them back. With `config.oracle.screen_repeats` = n > 0 it screens with the protocol's
first n final runs only (same seeds as the whole protocol's first ones), then its pick
is fine-tuned with the whole protocol like every other method's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import ml_collections

from vtab_eval import (
    files,
    finetune,
    hyperparams,
    pool,
    probes,
    protocol,
    report,
    run_dir,
    selection,
    tasks,
)
from vtab_eval.features import FeatureStore

# Fields whose change makes earlier results in a work directory incomparable.
_RESULT_FIELDS = ("image_size", "seed", "selection", "finetune")
# ... except these, which change how fast the results come, not what they are.
_SPEED_FIELDS = {"finetune": ("max_classes", "tuner_cache")}


def resolve_suite(suite: str) -> list[str]:
    """A suite name (`embedded`, `vtab1k`) or ';'-separated task specs."""
    suite = suite.strip()
    if suite in tasks.suite_names():
        return list(tasks.suite_specs(suite))
    specs = [s.strip() for s in suite.split(";") if s.strip()]
    if not specs:
        raise ValueError(f"--suite {suite!r} names no tasks; suites: {tasks.suite_names()}")
    for spec in specs:
        tasks.parse_spec(spec)  # Fails early, naming the bad spec.
    return specs


def make_selector(name: str, config: ml_collections.ConfigDict) -> selection.Selector:
    return selection.selector_class(name).from_config(config.selection)


def sweep_fn(config: ml_collections.ConfigDict) -> Callable[[int], list[hyperparams.HParams]]:
    ft = config.finetune

    def fn(dataset_size: int) -> list[hyperparams.HParams]:
        return hyperparams.sweep(
            ft.rule,
            dataset_size,
            learning_rates=tuple(ft.learning_rates),
            batch_size=ft.batch_size,
            steps=tuple(ft.steps),
            epochs=tuple(ft.epochs),
        )

    return fn


def _check_workdir(workdir: Path, config: ml_collections.ConfigDict, the_pool: pool.Pool):
    record = {"config": {f: _plain(config[f]) for f in _RESULT_FIELDS}, "pool": the_pool.ids}
    for section, fields in _SPEED_FIELDS.items():
        for field in fields:
            record["config"][section].pop(field, None)
    path = run_dir.RunDir(workdir).run_file
    if path.exists():
        old = files.read_json(path)
        for field in _RESULT_FIELDS:
            if old["config"].get(field) != record["config"][field]:
                raise ValueError(
                    f"{path}: this work directory was made with a different config.{field} "
                    f"({old['config'].get(field)} != {record['config'][field]}); use a new --workdir"
                )
        if old["pool"] != record["pool"]:
            raise ValueError(
                f"{path}: this work directory was made with another pool; use a new --workdir"
            )
    files.write_json(path, {**record, "preset": config.preset})


def _plain(value):
    if isinstance(value, ml_collections.ConfigDict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass
class Runner:
    config: ml_collections.ConfigDict
    pool: pool.Pool
    specs: list[str]
    selectors: list[str]
    workdir: Path
    log: Callable[[str], None] = print

    def __post_init__(self):
        self.workdir = Path(self.workdir)
        self.dir = run_dir.RunDir(self.workdir)
        self.store = FeatureStore(
            self.dir.features, self.config.image_size, self.config.selection.batch_size
        )
        self.tuners: protocol.TunerCache | None = None
        folder = self.config.get("probes", "")
        self.probe_images = probes.ProbeImages(folder) if folder else None
        unknown = [s for s in self.selectors if s not in selection.SELECTORS]
        if unknown:
            raise ValueError(
                f"unknown selectors {unknown}; choose from {list(selection.SELECTORS)}"
            )

    def is_done(self, spec: str) -> bool:
        result = self.dir.task(spec).result()
        return result is not None and set(self.selectors) <= set(result["methods"])

    def _modules_needed(self) -> list[pool.Module]:
        needs = {selection.SELECTORS[name].needs for name in self.selectors}
        needed = list(self.pool.experts) if "features" in needs else []
        for need, module in (("epn", self.pool.epn), ("classifier", self.pool.upstream_classifier)):
            if need in needs and module is not None:
                needed.append(module)
        return needed

    def precompute_features(self, todo: list) -> None:
        """Every needed module's features of the unfinished tasks, and of the probes
        (when `config.probes` names them), module by module: each is loaded once."""
        modules = self._modules_needed()
        jobs = [(t, self.config.selection.split) for t in todo]
        if self.probe_images is not None:
            modules += [e for e in self.pool.experts if e not in modules]
            jobs.append((self.probe_images, "all"))
        for index, module in enumerate(modules, 1):
            missing = [
                (t, split)
                for t, split in jobs
                if not self.store.cache_path(module.handle, t, split).exists()
                and (t is not self.probe_images or module in self.pool.experts)
            ]
            if not missing:
                continue
            start = time.perf_counter()
            for task, split in missing:
                self.store.outputs(module.handle, task, split)
            self.log(
                f"features {index}/{len(modules)} {module.id}: {len(missing)} tasks in "
                f"{time.perf_counter() - start:.1f}s"
            )

    def open_tuners(self, task_objects) -> protocol.TunerCache:
        """The FineTuner cache, with heads of `config.finetune.max_classes` outputs, or
        (when 0) of the most classes among the tasks given and those seen before."""
        ft, task_objects = self.config.finetune, list(task_objects)
        most = max(t.num_classes for t in task_objects)
        if ft.max_classes and most > ft.max_classes:
            big = max(task_objects, key=lambda t: t.num_classes)
            raise ValueError(
                f"task {big.spec} has {big.num_classes} classes, more than "
                f"config.finetune.max_classes={ft.max_classes}; raise it (or set 0: the most "
                "classes of any task in the suite)"
            )
        max_classes = ft.max_classes or most
        if self.tuners is None or self.tuners.max_classes < max_classes:
            if self.tuners is not None:
                self.tuners.clear()
            self.tuners = protocol.TunerCache(
                self.config.image_size, max_classes, ft.eval_batch, size=ft.tuner_cache
            )
        return self.tuners

    def write_probes(self) -> None:
        """The specialisation benchmark from the features embedded with the tasks', into
        `<report dir>/probes` (where the report finds it)."""
        if self.probe_images is None:
            return
        out = report.report_dir(self.workdir, self.config) / report.PROBES_DIR
        record = probes.write(self.pool, self.probe_images, self.store, out)
        self.log(f"{record['summary_line']} ({out}/probes.md)")

    def oracle_screening(self) -> int | None:
        """The final runs the oracle screens each candidate with, or None when that is
        the whole protocol (screen_repeats 0, or no fewer runs than the protocol has)."""
        ft, repeats = self.config.finetune, self.config.oracle.screen_repeats
        if repeats <= 0 or (ft.sweep_repeats == 1 and ft.final_repeats <= repeats):
            return None
        return int(repeats)

    def result_path(self, task, expert: pool.Module, screen: int | None = None) -> Path:
        """Where `finetune_expert(task, expert, screen)` keeps its results."""
        return self.dir.task(task.spec).finetune_path(expert.id, run_dir.screen_kind(screen))

    def oracle_path(self, task, expert: pool.Module) -> Path:
        return self.result_path(task, expert, self.oracle_screening())

    def screen_expert(self, task, expert: pool.Module) -> dict:
        """The oracle's fine-tuning of one candidate (see `oracle_screening`)."""
        return self.finetune_expert(task, expert, screen=self.oracle_screening())

    def finetune_expert(self, task, expert: pool.Module, screen: int | None = None) -> dict:
        """The protocol's results for (task, expert); with `screen` = n, those of its
        first trial's first n final runs only (the oracle's screening)."""
        path = self.result_path(task, expert, screen)
        if path.exists():
            return files.read_json(path)
        ft = self.config.finetune
        splits = {s: self.store.images(task, s) for s in tasks.SPLITS}
        tuners = self.open_tuners([task])
        cached = expert.handle in tuners
        what = "fine-tuning" if screen is None else f"screening (first {screen} run(s))"
        self.log(f"  {what} {expert.id} on {task.spec}")
        result = protocol.finetune(
            expert.handle,
            task,
            splits,
            sweep_fn(self.config),
            image_size=self.config.image_size,
            sweep_repeats=ft.sweep_repeats if screen is None else 1,
            final_repeats=ft.final_repeats if screen is None else screen,
            seed=finetune.run_seed(self.config.seed, task.spec),
            eval_batch=ft.eval_batch,
            tuners=tuners,
            progress=lambda message: self.log(f"    {message}"),
        )
        result.update({"expert": expert.id, "task": task.spec})
        if screen is not None:
            result["screen_repeats"] = screen
        files.write_json(path, result)
        build = "" if cached else f", {result['build_seconds']:.1f}s of it building the module"
        self.log(
            f"  fine-tuned {expert.id}: median test {result['median_test_accuracy']:.4f} "
            f"in {result['seconds']:.1f}s{build}"
        )
        return result

    def precompute_oracle(self, todo: list) -> None:
        """Fine-tunes every oracle candidate on every task, module by module, so that
        each module is loaded and traced once rather than once per task."""
        if "oracle" not in self.selectors or not todo:
            return
        ids = make_selector("oracle", self.config).candidates(self.pool)
        for index, expert in enumerate(map(self.pool.get, ids), 1):
            missing = [t for t in todo if not self.oracle_path(t, expert).exists()]
            if not missing:
                continue
            start = time.perf_counter()
            for task in missing:
                self.screen_expert(task, expert)
            self.log(
                f"oracle {index}/{len(ids)} {expert.id}: {len(missing)} tasks in "
                f"{time.perf_counter() - start:.1f}s"
            )

    def select(self, task, name: str) -> selection.SelectionResult:
        path = self.dir.task(task.spec).selection_path(name)
        if path.exists():
            return selection.SelectionResult.from_json(files.read_json(path))
        ctx = selection.Context(
            self.pool,
            self.store,
            split=self.config.selection.split,
            seed=self.config.seed,
            finetune=lambda expert: self.screen_expert(task, expert),  # the oracle's
        )
        result = make_selector(name, self.config).select(task, ctx)
        result.write(path)
        return result

    def run_task(self, task) -> dict:
        start = time.perf_counter()
        methods = {}
        for name in self.selectors:
            sel = self.select(task, name)
            self.log(
                f"  {name}: picks {sel.pick} (score {sel.scores[sel.pick]:.4f}, {sel.cost_seconds:.1f}s)"
            )
            tuned = self.finetune_expert(task, self.pool.get(sel.pick))
            methods[name] = {
                "pick": sel.pick,
                "selection_seconds": sel.cost_seconds,
                "finetune_seconds": tuned["seconds"],
                "test_accuracies": tuned["test_accuracies"],
                "median_test_accuracy": tuned["median_test_accuracy"],
            }
        # Methods of earlier runs with other selectors are kept: results accumulate.
        earlier = self.dir.task(task.spec).result() or {}
        result = {
            "task": task.spec,
            "group": task.group,
            "num_classes": task.num_classes,
            "methods": {**earlier.get("methods", {}), **methods},
            "seconds": time.perf_counter() - start,
        }
        files.write_json(self.dir.task(task.spec).result_path, result)
        return result

    def run(self) -> dict:
        _check_workdir(self.workdir, self.config, self.pool)
        start = time.perf_counter()
        todo = [s for s in self.specs if not self.is_done(s)]
        self.log(
            f"{len(self.specs)} tasks ({len(self.specs) - len(todo)} finished earlier), "
            f"{len(self.pool.experts)} experts, selectors {','.join(self.selectors)}"
        )
        data_dir = self.config.data_dir or None
        task_objects = {s: tasks.get_task(s, data_dir=data_dir) for s in todo}
        if task_objects:
            self.open_tuners(task_objects.values())  # Fails early on too many classes.
        self.precompute_features(list(task_objects.values()))
        self.precompute_oracle(list(task_objects.values()))
        start = time.perf_counter()  # The eta extrapolates the per-task loop only.
        for index, spec in enumerate(self.specs, 1):
            if spec not in task_objects:
                self.log(f"[{index}/{len(self.specs)}] {spec}: finished earlier")
                continue
            self.log(f"[{index}/{len(self.specs)}] {spec}")
            result = self.run_task(task_objects[spec])
            done = index - (len(self.specs) - len(todo))
            elapsed = time.perf_counter() - start
            remaining = len([s for s in self.specs[index:] if s in task_objects])
            summary = ", ".join(
                f"{m} {r['median_test_accuracy']:.3f}" for m, r in result["methods"].items()
            )
            self.log(
                f"[{index}/{len(self.specs)}] {spec}: {summary} ({result['seconds']:.0f}s; "
                f"eta {elapsed / max(done, 1) * remaining:.0f}s)"
            )
        self.write_probes()
        paths = report.write_report(self.workdir, self.config, methods=self.selectors)
        self.log(f"report: {paths['markdown']} ({time.perf_counter() - start:.0f}s in all)")
        return paths


def run(config: ml_collections.ConfigDict, log: Callable[[str], None] = print) -> dict:
    """Runs the configured evaluation; `config.pool`, `suite`, `selectors` and `workdir`
    say what (the binary copies its flags into them)."""
    if not config.pool:
        raise ValueError("no pool: pass --pool=<hub root or handles>")
    runner = Runner(
        config=config,
        pool=pool.open_pool(config.pool),
        specs=resolve_suite(config.suite),
        selectors=[s.strip() for s in config.selectors.split(",") if s.strip()],
        workdir=Path(config.workdir),
        log=log,
    )
    return runner.run()

"""The fine-tuning results of a transfer run: one protocol per (task, module), kept in
the run directory (``run_dir``) so a rerun reads them back instead of training again.

Results are shared between selectors that pick the same expert: the protocol is seeded
by (seed, task) only, so two methods picking one expert would get the very same runs
anyway; every expert on a task also sees the same batches, which makes the comparison
between methods paired.

FineTuners are kept per module program, whatever the task (``protocol.TunerCache``,
size ``config.finetune.tuner_cache``), so B and the full experts of one architecture
are loaded and traced once for the suite, each module's weights then loaded into that
FineTuner in turn. The oracle screens every candidate on every task (``stages`` runs
that module by module, so each module's weights are loaded once): with ``config.oracle.screen_repeats`` = n > 0,
n final runs of one trial; with 0, a whole protocol. Screening runs take seeds of their
own (``SCREENING_SEED``), so the oracle picks on runs its reported accuracy never
includes: its row is its pick's protocol, the very runs every other method's pick of
that expert is reported on. Picking and reporting on the same runs would count the
luck of the pick's runs as gain.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import ml_collections
import tensorflow as tf

from fanout import distribute, precision
from vtab_eval import files, images, run_dir, tasks
from vtab_eval.features import FeatureStore
from vtab_eval.finetune import ensemble, hyperparams, protocol
from vtab_eval.finetune import tuner as finetune
from vtab_eval.pool import expert_pool as pool

# Mixed into the screening runs' seeds, so none of them is one of the protocol's runs.
SCREENING_SEED = "oracle screening"


def sweep_fn(config: ml_collections.ConfigDict) -> protocol.SweepFn:
    """The configured sweep: candidate settings for a training set's size."""
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


def time_split(result: dict) -> str:
    """A protocol's seconds, split into building the module (loading and tracing it, or
    loading its weights into a built one of its program), the runs' training and
    evaluation steps, and the rest (data handling)."""
    total, build = result["seconds"], result.get("build_seconds", 0.0)
    steps = result.get("steps_seconds", 0.0)
    share = 100 * steps / total if total > 0 else 0.0
    return f"{total:.1f}s: build {build:.1f}s, steps {steps:.1f}s ({share:.0f}%)"


def _how_made_ready(tuners: protocol.TunerCache, builds: int, weight_loads: int) -> str:
    """What a protocol's log line says of its module, from the cache's counts before it."""
    if tuners.builds > builds:
        return " (module built for it)"
    if tuners.weight_loads > weight_loads:
        return " (its weights loaded into the built module of its program)"
    return ""


@dataclasses.dataclass
class Tuning:
    """Fine-tuning of (task, module) pairs for one run directory and config."""

    config: ml_collections.ConfigDict
    store: FeatureStore
    dir: run_dir.RunDir
    log: Callable[[str], None] = print
    tuners: protocol.TunerCache | None = None

    @classmethod
    def for_run(
        cls, config: ml_collections.ConfigDict, directory: run_dir.RunDir, log=print
    ) -> Tuning:
        """The run's fine-tuning with its feature store, both from the config: the one
        place a transfer run builds them, in this process or in a worker's."""
        store = FeatureStore(
            directory.features,
            config.image_size,
            config.selection.batch_size,
            precision=config.selection.get("precision", "float32"),
        )
        return cls(config, store, directory, log)

    @functools.cached_property
    def strategy(self) -> tf.distribute.Strategy:
        """The strategy every FineTuner runs under: ``config.strategy`` and
        ``config.tpu_address``, named and read as training's. Made once (on the first
        fine-tuning), since a process should hold one MirroredStrategy."""
        name = self.config.strategy
        if name not in distribute.STRATEGIES:
            raise ValueError(
                f"config.strategy={name!r}: choose one of {', '.join(distribute.STRATEGIES)}"
            )
        return distribute.make_strategy(name, self.config.tpu_address)

    def open_tuners(self, task_objects) -> protocol.TunerCache:
        """The FineTuner cache, with heads of `config.finetune.max_classes` outputs, or
        (when 0) of the most classes among the tasks given and those seen before."""
        ft, task_objects = self.config.finetune, list(task_objects)
        self.precision()  # a bad value fails before any work
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
                self.config.image_size, max_classes, ft.eval_batch, ft.tuner_cache, self.strategy
            )
        return self.tuners

    def oracle_screening(self) -> int:
        """The final runs of one trial the oracle screens each candidate with, or 0 for a
        whole protocol (screen_repeats 0, or no fewer runs than the protocol has)."""
        ft, repeats = self.config.finetune, self.config.oracle.screen_repeats
        if repeats <= 0 or (ft.sweep_repeats == 1 and ft.final_repeats <= repeats):
            return 0
        return int(repeats)

    def result_path(self, task, expert: pool.Module, screen: int | None = None) -> Path:
        """Where `finetune_expert(task, expert, screen)` keeps its results."""
        return self.dir.task(task.key).finetune_path(expert.id, run_dir.screen_kind(screen))

    def is_done(self, task, expert: pool.Module, screen: int | None = None, keep=False) -> bool:
        """Whether `finetune_expert(task, expert, screen, keep)` would only read back."""
        done = self.result_path(task, expert, screen).exists()
        return done and (not keep or self.probabilities_path(task, expert).exists())

    def screen_expert(self, task, expert: pool.Module) -> dict:
        """The oracle's fine-tuning of one candidate (see `oracle_screening`)."""
        return self.finetune_expert(task, expert, screen=self.oracle_screening())

    def probabilities_path(self, task, expert: pool.Module) -> Path:
        """Where `finetune_expert(task, expert, keep=True)` keeps the runs' probabilities."""
        return self.dir.task(task.key).probabilities_path(expert.id)

    def finetune_expert(
        self, task, expert: pool.Module, screen: int | None = None, keep: bool = False
    ) -> dict:
        """The protocol's results for (task, expert); with `screen` (not None), the
        oracle's screening (`oracle_screening`), on seeds of its own. With ``keep`` (a
        member of an ensemble), the runs' class probabilities too (``member_runs``): a
        record made without them is made again, on the same seeds."""
        if keep and screen is not None:
            raise ValueError("screening runs keep no probabilities: no ensemble uses them")
        path = self.result_path(task, expert, screen)
        if self.is_done(task, expert, screen, keep):
            return run_dir.read_record(path, run_dir.FINETUNE_RECORD)
        tuners = self.open_tuners([task])
        builds, weight_loads = tuners.builds, tuners.weight_loads
        what = "fine-tuning" if screen is None else f"screening ({screen or 'whole protocol'})"
        again = " again, keeping its probabilities" if path.exists() else ""
        self.log(f"  {what} {expert.id} on {task.spec}{again}")
        with precision.rewrite(self.precision()):
            result = self._finetune(task, expert, screen, tuners, keep)
        result.update({"expert": expert.id, "kind": expert.kind, "task": task.spec})
        if screen is not None:
            result["screen_repeats"] = screen
        if keep:  # before the record, whose presence says the work is done
            arrays = result.pop("arrays")
            files.write_npz(self.probabilities_path(task, expert), compressed=True, **arrays)
        files.write_json(path, result)
        self.log(
            f"  fine-tuned {expert.id}: median test {result['median_test_accuracy']:.4f} "
            f"in {time_split(result)}" + _how_made_ready(tuners, builds, weight_loads)
        )
        return result

    def precision(self) -> str:
        """``config.finetune.precision``, checked: float32 or bfloat16."""
        name = precision.check(
            self.config.finetune.get("precision", "float32"), "finetune.precision"
        )
        if name == "float16":
            raise ValueError(
                "config.finetune.precision=float16 would need loss scaling, which fine-tuning "
                "does not do; use bfloat16 or float32"
            )
        return name

    def member_runs(self, task, expert: pool.Module) -> ensemble.MemberRuns:
        """The class probabilities ``finetune_expert(task, expert, keep=True)`` kept,
        checked."""
        path = self.probabilities_path(task, expert)
        return ensemble.read_member_runs(path)

    def _finetune(self, task, expert: pool.Module, screen: int | None, tuners, keep) -> dict:
        ft = self.config.finetune
        part = screen is not None and screen > 0  # else the protocol's repeats
        seed_parts = (self.config.seed, task.spec) + (() if screen is None else (SCREENING_SEED,))
        return protocol.finetune(
            expert.handle,
            task,
            self.splits(task),
            sweep_fn(self.config),
            image_size=self.config.image_size,
            sweep_repeats=1 if part else ft.sweep_repeats,
            final_repeats=screen if part else ft.final_repeats,
            seed=finetune.run_seed(*seed_parts),
            eval_batch=ft.eval_batch,
            tuners=tuners,
            progress=lambda message: self.log(f"    {message}"),
            keep=keep,
        )

    def splits(self, task) -> dict:
        """The protocol's splits: the training ones in memory (at most 1,000 images),
        the test split too when it fits ``config.finetune.max_test_bytes`` decoded, and
        streamed batch by batch otherwise, so memory stays bounded whatever its size."""
        out = {s: self.store.images(task, s) for s in tasks.SPLITS if s != "test"}
        size = self.config.image_size
        if images.decoded_bytes(task, "test", size) <= self.config.finetune.max_test_bytes:
            out["test"] = self.store.images(task, "test")
        else:
            out["test"] = images.StreamedSplit(task, "test", size, self.config.finetune.eval_batch)
        return out

"""The VTAB-1k protocol for one (task, module), around `tuner.FineTuner` runs.

Protocol (`run_protocol`, paper section 6.3):
  for each of `sweep_repeats` trials: fine-tune every sweep candidate on train800,
  keep the best accuracy on val200 (ties: the first candidate); then fine-tune the kept
  setting `final_repeats` times on train800val200 and measure test accuracy.
The task's result is the median of all test accuracies (10 x 3 = 30 in the paper).
With a single sweep candidate the val200 run cannot change the choice and is skipped.

A module that is a member of an ensemble (finetune/ensemble.py) keeps its runs'
class probabilities (``keep``): per trial the val200 ones of a train800 run of the
chosen setting, which chooses the ensemble's members and weights, and per final run
the test ones. The train800 run is the sweep's own run of the chosen setting; when the
sweep is skipped, it is run on the seed the sweep would have given it, at a cost
recorded apart (``ensemble_seconds``), so ``seconds`` stays the protocol's.

`TunerCache` keeps the recently used FineTuners, one per module program, so a program is
loaded and its step traced once for all the modules that hold it and all the tasks
they fine-tune on.
"""

from __future__ import annotations

import collections
import gc
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras
from absl import logging

from fanout import module_check
from vtab_eval.finetune.hyperparams import HParams
from vtab_eval.finetune.tuner import Arrays, FineTuner, run_seed
from vtab_eval.pool import hub_loader, module_program

SweepFn = Callable[[int], Sequence[HParams]]
Progress = Callable[[str], None]


class TunerCache:
    """FineTuners by module program (``pool.module_program``), the least recently used
    dropped beyond `size`: a program is loaded and traced once for every module that
    holds it (B and the full experts of one architecture), whose weights are loaded into
    its FineTuner in turn (``FineTuner.load_module``), and for every task, while it stays
    in the cache. `builds` counts the FineTuners built, `weight_loads` the modules made
    ready by loading their weights into one.

    Written out rather than a library LRU because the eviction must happen *before* the
    next module is built, so two models never share memory beyond `size`."""

    def __init__(
        self,
        image_size: int,
        max_classes: int,
        eval_batch: int = 256,
        size: int = 3,
        strategy: tf.distribute.Strategy | None = None,
    ):
        if size < 1:
            raise ValueError(f"the FineTuner cache needs a size >= 1, got {size}")
        self.image_size = int(image_size)
        self.max_classes = int(max_classes)
        self.eval_batch = int(eval_batch)
        self.size = int(size)
        self.strategy = strategy  # every FineTuner's (None: the default strategy)
        self._tuners: collections.OrderedDict[str, FineTuner] = collections.OrderedDict()
        self.builds = self.weight_loads = 0

    def __contains__(self, handle: str) -> bool:
        """Whether a FineTuner holds this module now (its weights are loaded)."""
        return any(tuner.handle == handle for tuner in self._tuners.values())

    def __len__(self) -> int:
        return len(self._tuners)

    def get(self, handle: str) -> tuple[FineTuner, float]:
        """The FineTuner holding the module and the seconds spent making it ready now:
        0 when it held it already, else loading its weights into the FineTuner of its
        program, or building one (reading the module's program counts in either)."""
        for program, tuner in self._tuners.items():
            if tuner.handle == handle:
                self._tuners.move_to_end(program)
                return tuner, 0.0
        start = time.perf_counter()
        program = module_program.program_key(hub_loader.local_dir(handle))
        if program in self._tuners:
            try:
                self._tuners[program].load_module(handle)
            except module_check.DamagedModuleError:
                # Built afresh below, in its place: the build names any real damage.
                del self._tuners[program]
                gc.collect()
            else:
                self._tuners.move_to_end(program)
                self.weight_loads += 1
                return self._tuners[program], time.perf_counter() - start
        while len(self._tuners) >= self.size:
            self._tuners.popitem(last=False)
            gc.collect()
        tuner = FineTuner(handle, self.max_classes, self.image_size, self.eval_batch, self.strategy)
        self._tuners[tuner.program] = tuner
        self.builds += 1
        return tuner, time.perf_counter() - start

    def clear(self) -> None:
        self._tuners.clear()
        keras.backend.clear_session()
        gc.collect()


def run_protocol(
    tuner: FineTuner,
    splits: dict[str, Arrays],
    sweep_fn: SweepFn,
    *,
    sweep_repeats: int,
    final_repeats: int,
    seed: int,
    num_classes: int | None = None,
    progress: Progress = lambda message: None,
    keep: bool = False,
) -> dict:
    """The VTAB-1k protocol for one (task, module); see the module docstring.

    `splits` maps train800, val200, train800val200 and test to (uint8 images, labels);
    `sweep_fn(dataset_size)` gives the candidate settings for a training-set size;
    `num_classes` is the task's (default: the tuner's `max_classes`). With ``keep``, the
    result's ``arrays`` hold the probabilities an ensemble needs (module docstring).
    """
    if sweep_repeats < 1 or final_repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {sweep_repeats} and {final_repeats}")
    start = time.perf_counter()
    trials, kept = [], _Kept(keep)
    for trial in range(sweep_repeats):
        label = f"trial {trial + 1}/{sweep_repeats}"
        records, chosen_index, val = _sweep(
            tuner, splits, sweep_fn, (seed, trial), num_classes,
            lambda message, label=label: progress(f"{label} {message}"), keep,
        )  # fmt: skip
        record = {}
        if keep:
            record["ensemble_val"] = kept.validation(
                val
                or _validation_run(
                    tuner, splits, sweep_fn, (seed, trial), chosen_index, num_classes
                )
            )
        # The retrain uses the chosen setting's rule at the larger training set's size.
        final_hp = list(sweep_fn(len(splits["train800val200"][1])))[chosen_index]
        finals = []
        for repeat in range(final_repeats):
            result = tuner.run(
                splits["train800val200"], splits["test"], final_hp,
                run_seed(seed, trial, "final", repeat), num_classes, **_keep_kwargs(keep),
            )  # fmt: skip
            finals.append({"test_accuracy": result["accuracy"], **kept.test(result)})
            progress(f"{label} final {repeat + 1}/{final_repeats}: test {result['accuracy']:.3f}")
        record.update(
            sweep=records, chosen=final_hp.to_json(), chosen_index=chosen_index, finals=finals
        )
        trials.append(record)
    tests = [final["test_accuracy"] for trial in trials for final in trial["finals"]]
    runs = [run for trial in trials for run in (*trial["sweep"], *trial["finals"])]
    out = {
        "handle": tuner.handle,
        "num_parameters": tuner.num_parameters(num_classes),
        "trials": trials,
        "test_accuracies": tests,
        "median_test_accuracy": float(np.median(tests)),
        # Training and evaluation only; the rest of `seconds` is data handling and, when
        # `finetune` made the module ready for this call, the build or weight load.
        "steps_seconds": sum(run["seconds"] for run in runs),
        "seconds": time.perf_counter() - start,
    }
    if keep:
        out["seconds"] -= kept.extra_seconds
        out.update(ensemble_seconds=kept.extra_seconds, arrays=kept.arrays())
    return out


def _keep_kwargs(keep: bool) -> dict:
    # Only when kept: a tuner need not know the argument otherwise (tests' stand-ins).
    return {"keep": True} if keep else {}


class _Kept:
    """The probabilities a member of an ensemble keeps, gathered over the protocol
    (nothing when ``keep`` is off)."""

    def __init__(self, keep: bool):
        self.keep = keep
        self.val, self.val_labels, self.tests, self.test_labels = [], None, [], None
        self.extra_seconds = 0.0

    def validation(self, run: dict) -> dict:
        """Keeps a train800 run's val200 probabilities; returns what its record says."""
        self.val.append(run.pop("log_probs"))
        self.val_labels = run.pop("labels")
        self.extra_seconds += run.pop("extra_seconds", 0.0)
        return run

    def test(self, final: dict) -> dict:
        """Keeps a final run's test probabilities; returns the rest of its result."""
        if self.keep:
            self.tests.append(final.pop("log_probs"))
            self.test_labels = final.pop("labels")
        return final

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "val_log_probs": np.stack(self.val),
            "val_labels": self.val_labels,
            "test_log_probs": np.stack(self.tests),
            "test_labels": self.test_labels,
        }


def _validation_run(tuner, splits, sweep_fn, seed_parts, index: int, num_classes) -> dict:
    """The sweep's run of candidate ``index`` when the sweep itself was skipped: on
    train800, evaluated on val200, on the seed the sweep gives that candidate."""
    hp = list(sweep_fn(len(splits["train800"][1])))[index]
    seed = run_seed(*seed_parts, "sweep", index)
    result = tuner.run(splits["train800"], splits["val200"], hp, seed, num_classes, keep=True)
    return {
        "val_accuracy": result["accuracy"],
        "seed": seed,
        "seconds": result["seconds"],
        "extra_seconds": result["seconds"],
        "log_probs": result["log_probs"],
        "labels": result["labels"],
    }


def _sweep(tuner, splits, sweep_fn: SweepFn, seed_parts, num_classes, progress: Progress, keep):
    """One trial's sweep on train800 against val200: its records, the index of the
    best candidate (the first of equals), and with ``keep`` the chosen run's
    probabilities (None when the sweep is skipped); no runs with a single candidate."""
    candidates = list(sweep_fn(len(splits["train800"][1])))
    if len(candidates) == 1:
        return [], 0, None
    records, arrays = [], []
    for index, hp in enumerate(candidates):
        result = tuner.run(
            splits["train800"], splits["val200"], hp,
            run_seed(*seed_parts, "sweep", index), num_classes, **_keep_kwargs(keep),
        )  # fmt: skip
        if keep:
            arrays.append({"log_probs": result.pop("log_probs"), "labels": result.pop("labels")})
        records.append({"hparams": hp.to_json(), "val_accuracy": result["accuracy"], **result})
        progress(f"sweep {index + 1}/{len(candidates)}: val {result['accuracy']:.3f}")
    best = max(r["val_accuracy"] for r in records)
    chosen = next(i for i, r in enumerate(records) if r["val_accuracy"] == best)
    val = {"from_sweep": True, "val_accuracy": best, **arrays[chosen]} if keep else None
    return records, chosen, val


def finetune(
    handle: str,
    task,
    splits: dict[str, Arrays],
    sweep_fn: SweepFn,
    *,
    image_size: int,
    sweep_repeats: int,
    final_repeats: int,
    seed: int,
    eval_batch: int = 256,
    tuners: TunerCache | None = None,
    strategy: tf.distribute.Strategy | None = None,
    progress: Progress = lambda message: None,
    keep: bool = False,
) -> dict:
    """Runs the protocol with the module's FineTuner from `tuners` (built there, or
    given the module's weights, when missing, under the cache's strategy), or, without
    a cache, with one of exactly the task's classes built for this call alone, under
    `strategy`. `seconds` includes the time this call spent making the module ready
    (building a FineTuner or loading the module's weights into one), which
    `build_seconds` records (0 when an earlier task had made it ready)."""
    if tuners is None:
        tuner = FineTuner(handle, task.num_classes, image_size, eval_batch, strategy)
        build_seconds = tuner.build_seconds
    else:
        if strategy is not None and strategy is not tuners.strategy:
            raise ValueError("the FineTuner cache was made for another tf.distribute strategy")
        if tuners.image_size != image_size or tuners.eval_batch != eval_batch:
            raise ValueError(
                f"the FineTuner cache is for {tuners.image_size} px and evaluation batches of "
                f"{tuners.eval_batch}, not {image_size} and {eval_batch}"
            )
        tuner, build_seconds = tuners.get(handle)
    try:
        result = run_protocol(
            tuner, splits, sweep_fn,
            sweep_repeats=sweep_repeats, final_repeats=final_repeats, seed=seed,
            num_classes=task.num_classes, progress=progress, keep=keep,
        )  # fmt: skip
    finally:
        if tuners is None:
            del tuner
            keras.backend.clear_session()
            gc.collect()
    result["build_seconds"] = build_seconds
    result["seconds"] += build_seconds
    logging.info(
        "fine-tuned %s on %s: median test %.4f", handle, task.spec, result["median_test_accuracy"]
    )
    return result

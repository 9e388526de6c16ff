"""Fine-tuning one hub module on one task, and the VTAB-1k protocol around it.

The model is `hub.KerasLayer(handle, trainable=True)` followed by a zero-initialised
dense head, so every weight trains (paper, section 5.1: the whole expert, adapters
included). Optimiser: SGD with momentum 0.9 written out as TF1's MomentumOptimizer,
which task_adaptation used (`m = 0.9 m + g; w -= lr m`), so a rate change takes effect
at once and resetting a run is assigning zeros. Loss: softmax cross-entropy plus any
regularisation losses the module exports; no weight decay, no augmentation (VTAB).

One `FineTuner` is built per (task, module) and reused by every run of the protocol:
weights and momenta are restored in place between runs, so the training step is traced
once. Each run draws its batches from its own seed (epoch-wise permutations).

Protocol (`run_protocol`, paper section 6.3):
  for each of `sweep_repeats` trials: fine-tune every sweep candidate on train800,
  keep the best accuracy on val200 (ties: the first candidate); then fine-tune the kept
  setting `final_repeats` times on train800val200 and measure test accuracy.
The task's result is the median of all test accuracies (10 x 3 = 30 in the paper).
With a single sweep candidate the val200 run cannot change the choice and is skipped.
"""

from __future__ import annotations

import gc
import hashlib
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras
from absl import logging

from vtab_eval import hub_loader
from vtab_eval.features import to_float
from vtab_eval.hyperparams import MOMENTUM, HParams, learning_rate_at

Arrays = tuple[np.ndarray, np.ndarray]


def run_seed(*parts) -> int:
    """A 31-bit seed from any parts (stable across processes, unlike hash())."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def batch_indices(n: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """`[steps, batch_size]` example indices: consecutive shuffled epochs, cut in batches
    (a batch may straddle two epochs; no example repeats within an epoch)."""
    rng = np.random.default_rng(seed)
    needed = steps * batch_size
    order = np.concatenate([rng.permutation(n) for _ in range(-(-needed // n))])
    return order[:needed].reshape(steps, batch_size)


class FineTuner:
    """A module with a fresh zero head for one task; `run` trains from the initial
    weights and returns the accuracy on an evaluation set."""

    def __init__(self, handle: str, num_classes: int, image_size: int, eval_batch: int = 256):
        self.handle = handle
        self.eval_batch = eval_batch
        layer = hub_loader.load(handle, trainable=True)
        inputs = keras.Input([image_size, image_size, 3], dtype=tf.float32)
        features = layer(inputs)
        head = keras.layers.Dense(
            num_classes, kernel_initializer="zeros", bias_initializer="zeros", name="head"
        )
        self.model = keras.Model(inputs, head(features))
        if not layer.trainable_variables:
            raise ValueError(f"module {handle}: no trainable variables; cannot fine-tune it")
        self._trainable = self.model.trainable_variables
        self._initial = [v.numpy() for v in self.model.variables]
        self._momenta = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self._trainable]
        spec = tf.TensorSpec([None, image_size, image_size, 3], tf.uint8)
        label_spec = tf.TensorSpec([None], tf.int64)
        self._train_step = tf.function(
            self._step, input_signature=[spec, label_spec, tf.TensorSpec([], tf.float32)]
        )
        self._predict = tf.function(
            lambda x: tf.argmax(self.model(to_float(x), training=False), -1), input_signature=[spec]
        )

    @property
    def num_parameters(self) -> int:
        return int(sum(np.prod(v.shape) for v in self._trainable))

    def _step(self, images, labels, lr):
        with tf.GradientTape() as tape:
            logits = self.model(to_float(images), training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            )
            if self.model.losses:
                loss += tf.add_n(self.model.losses)
        grads = tape.gradient(loss, self._trainable)
        for var, momentum, grad in zip(self._trainable, self._momenta, grads, strict=True):
            if grad is None:
                continue
            momentum.assign(MOMENTUM * momentum + grad)
            var.assign_sub(tf.cast(lr, var.dtype) * momentum)
        return loss

    def reset(self) -> None:
        for var, value in zip(self.model.variables, self._initial, strict=True):
            var.assign(value)
        for momentum in self._momenta:
            momentum.assign(tf.zeros_like(momentum))

    def accuracy(self, data: Arrays) -> float:
        images, labels = data
        predictions = [
            self._predict(tf.constant(images[i : i + self.eval_batch])).numpy()
            for i in range(0, len(images), self.eval_batch)
        ]
        return float(np.mean(np.concatenate(predictions) == labels))

    def run(self, train: Arrays, evaluate: Arrays, hp: HParams, seed: int) -> dict:
        """Trains from the initial weights with `hp`; returns accuracy and loss curve."""
        self.reset()
        images, labels = train
        start = time.perf_counter()
        losses = []
        for step, idx in enumerate(batch_indices(len(labels), hp.batch_size, hp.steps, seed)):
            lr = tf.constant(learning_rate_at(step, hp), tf.float32)
            losses.append(
                float(self._train_step(tf.constant(images[idx]), tf.constant(labels[idx]), lr))
            )
            if not np.isfinite(losses[-1]):
                raise FloatingPointError(
                    f"module {self.handle}: loss became {losses[-1]} at step {step} with {hp}"
                )
        train_seconds = time.perf_counter() - start
        accuracy = self.accuracy(evaluate)
        return {
            "accuracy": accuracy,
            "seed": seed,
            "first_loss": losses[0],
            "final_loss": losses[-1],
            "train_seconds": train_seconds,
            "seconds": time.perf_counter() - start,
        }


SweepFn = Callable[[int], Sequence[HParams]]


def run_protocol(
    tuner: FineTuner,
    splits: dict[str, Arrays],
    sweep_fn: SweepFn,
    *,
    sweep_repeats: int,
    final_repeats: int,
    seed: int,
    progress: Callable[[str], None] = lambda message: None,
) -> dict:
    """The VTAB-1k protocol for one (task, module); see the module docstring.

    `splits` maps train800, val200, train800val200 and test to (uint8 images, labels);
    `sweep_fn(dataset_size)` gives the candidate settings for a training-set size.
    """
    if sweep_repeats < 1 or final_repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {sweep_repeats} and {final_repeats}")
    start = time.perf_counter()
    trials, tests = [], []
    for trial in range(sweep_repeats):
        candidates = list(sweep_fn(len(splits["train800"][1])))
        records = []
        if len(candidates) > 1:
            for index, hp in enumerate(candidates):
                result = tuner.run(
                    splits["train800"], splits["val200"], hp, run_seed(seed, trial, "sweep", index)
                )
                records.append(
                    {"hparams": hp.to_json(), "val_accuracy": result["accuracy"], **result}
                )
                progress(
                    f"trial {trial + 1}/{sweep_repeats} sweep {index + 1}/{len(candidates)}: val {result['accuracy']:.3f}"
                )
            best_val = max(r["val_accuracy"] for r in records)
            chosen_index = next(i for i, r in enumerate(records) if r["val_accuracy"] == best_val)
        else:
            chosen_index = 0
        # The retrain uses the chosen setting's rule at the larger training set's size.
        final_hp = list(sweep_fn(len(splits["train800val200"][1])))[chosen_index]
        finals = []
        for repeat in range(final_repeats):
            result = tuner.run(
                splits["train800val200"], splits["test"], final_hp,
                run_seed(seed, trial, "final", repeat),
            )  # fmt: skip
            finals.append({"test_accuracy": result["accuracy"], **result})
            tests.append(result["accuracy"])
            progress(
                f"trial {trial + 1}/{sweep_repeats} final {repeat + 1}/{final_repeats}: test {result['accuracy']:.3f}"
            )
        trials.append(
            {
                "sweep": records,
                "chosen": final_hp.to_json(),
                "chosen_index": chosen_index,
                "finals": finals,
            }
        )
    return {
        "handle": tuner.handle,
        "num_parameters": tuner.num_parameters,
        "trials": trials,
        "test_accuracies": tests,
        "median_test_accuracy": float(np.median(tests)),
        "seconds": time.perf_counter() - start,
    }


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
    progress: Callable[[str], None] = lambda message: None,
) -> dict:
    """Builds a FineTuner and runs the protocol; `seconds` includes building the model."""
    start = time.perf_counter()
    tuner = FineTuner(handle, task.num_classes, image_size, eval_batch)
    try:
        result = run_protocol(
            tuner,
            splits,
            sweep_fn,
            sweep_repeats=sweep_repeats,
            final_repeats=final_repeats,
            seed=seed,
            progress=progress,
        )
    finally:
        del tuner
        keras.backend.clear_session()
        gc.collect()
    result["seconds"] = time.perf_counter() - start
    logging.info(
        "fine-tuned %s on %s: median test %.4f", handle, task.spec, result["median_test_accuracy"]
    )
    return result

"""Fine-tuning one hub module on one task: the model, its training step and one run.

The model is `hub.KerasLayer(handle, trainable=True)` followed by a zero-initialised
dense head, so every weight trains (paper, section 5.1: the whole expert, adapters
included). Optimiser: SGD with momentum 0.9 written out as TF1's MomentumOptimizer,
which task_adaptation used (`m = 0.9 m + g; w -= lr m`), so a rate change takes effect
at once and resetting a run is assigning zeros. Loss: softmax cross-entropy plus any
regularisation losses the module exports; no weight decay, no augmentation (VTAB).

One `FineTuner` is built per module program and reused by every run of the protocol on
every task: weights (head included) and momenta are restored in place between runs, so
the module is loaded and its training step traced once (`protocol.TunerCache` keeps the
recently used ones). Modules that hold the same program and differ only in their
weights (B and the full experts of one architecture: `pool.module_program`) share one
FineTuner: `load_module` reads another module's weights into the loaded module's
variables, which the traced functions read, so the module is neither loaded nor traced
again, and its runs are bit for bit those of a FineTuner built for it. The head has a fixed `max_classes` outputs and each run passes a
class mask as a tensor: logits of the classes a task does not have are set to a large
negative constant (`MASKED_LOGIT`, not -inf, which would make NaN) before the softmax
cross-entropy and the argmax. Their softmax probability is exactly zero, so their head
columns get zero gradients and stay at zero: a run equals one with a head of exactly
`num_classes` outputs, up to float rounding. Each run draws its batches from its own
seed (epoch-wise permutations).

Under a tf.distribute strategy (``strategy``, from ``fanout.distribute``: the same
``strategy`` field as training's), the variables are made in its scope and each step
runs on every replica with a contiguous share of the batch; a replica's loss is
averaged over the global batch and the gradients are summed over replicas before the
update, so a step equals the single-device step up to float rounding (the modules
normalise per example, GroupNorm, so no batch statistic depends on the split). The
batch size must be a multiple of the replicas. Evaluation runs on one device, reading
the first replica's weights: a forward pass over a VTAB test split (tens of thousands of
images at most) costs a few percent of a paper-preset run's training (2,500 steps or
more of 512 images, forward and backward).

The protocol around the runs is `vtab_eval.finetune.protocol`'s.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from fanout import module_check
from vtab_eval import features as features_lib
from vtab_eval.finetune.hyperparams import MOMENTUM, HParams, learning_rate_at
from vtab_eval.images import to_float
from vtab_eval.pool import hub_loader, module_program

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


# Logit of a class the task does not have: its softmax probability underflows to exactly
# zero, while -inf would give NaN (inf - inf) in the loss and its gradient.
MASKED_LOGIT = -1e9


class FineTuner:
    """A module with a zero head of `max_classes` outputs; `run` trains from the initial
    weights on a task of up to `max_classes` classes and returns the accuracy on an
    evaluation set. Building it loads the module and traces and runs its functions once
    (`build_seconds`), so the first run costs what every later run does. `load_module`
    makes it another module's of the same `program`."""

    def __init__(
        self,
        handle: str,
        max_classes: int,
        image_size: int,
        eval_batch: int = 256,
        strategy: tf.distribute.Strategy | None = None,
    ):
        start = time.perf_counter()
        if max_classes < 1:
            raise ValueError(f"max_classes must be >= 1, got {max_classes}")
        self.handle = handle
        self.max_classes = int(max_classes)
        self.image_size = int(image_size)
        self.eval_batch = eval_batch
        self.strategy = strategy or tf.distribute.get_strategy()
        directory = hub_loader.local_dir(handle)
        self.program = module_program.program_key(directory)
        with self.strategy.scope():  # module, head and momenta: one copy per replica
            layer = hub_loader.load(directory, trainable=True)
            self._module = layer.resolved_object
            inputs = keras.Input([image_size, image_size, 3], dtype=tf.float32)
            features = features_lib.first_call(handle, image_size, lambda: layer(inputs))
            head = keras.layers.Dense(
                self.max_classes, kernel_initializer="zeros", bias_initializer="zeros", name="head"
            )
            self.model = keras.Model(inputs, head(features))
            if not layer.trainable_variables:
                raise ValueError(f"module {handle}: no trainable variables; cannot fine-tune it")
            self._trainable = self.model.trainable_variables
            self._momenta = [
                tf.Variable(tf.zeros_like(v), trainable=False) for v in self._trainable
            ]
        self.feature_dim = int(features.shape[-1])
        self._backbone_parameters = int(sum(np.prod(v.shape) for v in layer.trainable_variables))
        self._initial = [v.numpy() for v in self.model.variables]
        spec = tf.TensorSpec([None, image_size, image_size, 3], tf.uint8)
        mask_spec = tf.TensorSpec([self.max_classes], tf.bool)
        self._train_steps = tf.function(
            self._steps,
            input_signature=[
                spec, tf.TensorSpec([None], tf.int64), tf.TensorSpec([None, None], tf.int64),
                tf.TensorSpec([None], tf.float32), mask_spec,
            ],
        )  # fmt: skip
        self._predict = tf.function(self._predict_fn, input_signature=[spec, mask_spec])
        # Traced on first use: only runs that keep their probabilities (an ensemble's).
        self._predict_log_probs = tf.function(
            self._predict_log_probs_fn, input_signature=[spec, mask_spec]
        )
        self.losses: list[float] = []  # the last run's loss curve
        self._warm_up()
        self.build_seconds = time.perf_counter() - start

    def load_module(self, handle: str) -> float:
        """Makes this FineTuner ``handle``'s: that module's weights are read into the
        loaded module's variables and become the initial weights of every run. Only for
        a module of the same program (refused otherwise), whose ops were then checked
        with this one's. Weights that cannot be read are a DamagedModuleError, and the
        FineTuner stays the previous module's. Returns the seconds it took."""
        start = time.perf_counter()
        directory = hub_loader.local_dir(handle)
        if module_program.program_key(directory) != self.program:
            raise ValueError(
                f"module {handle} does not hold the program of {self.handle}; "
                "build a FineTuner for it"
            )
        prefix = os.path.join(directory, "variables", "variables")
        try:
            with self.strategy.scope():
                # Matched through the object graph, as loading the module restores them.
                tf.train.Checkpoint(root=self._module).read(prefix).assert_consumed()
        except (IndexError, OSError, tf.errors.OpError, AssertionError) as e:
            self.reset()  # any variable read before the failure
            raise module_check.DamagedModuleError(
                f"module {handle}: cannot read its weights ({_first_line(e)}); "
                "its files are damaged or incomplete: export or download the module again"
            ) from e
        restored = {v.ref() for v in self._module.variables}
        self._initial = [
            var.numpy() if var.ref() in restored else initial  # the head's stay zero
            for var, initial in zip(self.model.variables, self._initial, strict=True)
        ]
        self.handle = handle
        self.reset()
        return time.perf_counter() - start

    def num_parameters(self, num_classes: int | None = None) -> int:
        """Trainable parameters of the module plus a head of `num_classes` outputs (the
        padded columns of a smaller task are not counted: they never change)."""
        num_classes = self.max_classes if num_classes is None else num_classes
        return self._backbone_parameters + (self.feature_dim + 1) * int(num_classes)

    def class_mask(self, num_classes: int | None = None) -> tf.Tensor:
        """`[max_classes]` bool: True for the task's classes 0 .. num_classes - 1."""
        num_classes = self.max_classes if num_classes is None else int(num_classes)
        if num_classes > self.max_classes:
            raise ValueError(
                f"a task with {num_classes} classes does not fit the head of {self.max_classes} "
                f"outputs of the FineTuner for {self.handle}; raise max_classes "
                "(config.finetune.max_classes)"
            )
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        return tf.constant(np.arange(self.max_classes) < num_classes)

    def _logits(self, images, mask, training: bool):
        logits = self.model(to_float(images), training=training)
        return tf.where(mask, logits, tf.constant(MASKED_LOGIT, logits.dtype))

    def _steps(self, images, labels, indices, rates, mask):
        """Every step of a run in one call, batch ``s`` being ``indices[s]`` of the
        training set at rate ``rates[s]``: one call per run, not per step, so the
        host neither dispatches nor waits on each step. Returns the step losses.

        Each replica gets a copy of the training set (at most VTAB-1k's 1,000 images)
        once per call, on its own device, and its contiguous share of every batch's
        indices, so no step copies images between devices."""
        strategy = self.strategy
        global_batch = tf.shape(indices)[1]
        share = global_batch // strategy.num_replicas_in_sync

        def replica_data(ctx):
            first = ctx.replica_id_in_sync_group * share
            return tf.identity(images), tf.identity(labels), indices[:, first : first + share]

        data = strategy.experimental_distribute_values_from_function(replica_data)
        losses = tf.TensorArray(tf.float32, size=tf.shape(indices)[0])
        for step in tf.range(tf.shape(indices)[0]):
            loss = strategy.run(
                self._replica_step, args=(*data, step, rates[step], mask, global_batch)
            )
            loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
            losses = losses.write(step, tf.cast(loss, tf.float32))
        return losses.stack()

    def _replica_step(self, images, labels, indices, step, lr, mask, global_batch):
        """One replica's part of a step: its share of the batch, its loss averaged over
        the *global* batch (and its share of the regularisation), so the gradients
        summed over replicas are the single-device gradient."""
        batch = indices[step]
        with tf.GradientTape() as tape:
            logits = self._logits(tf.gather(images, batch), mask, training=True)
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.gather(labels, batch), logits=logits
            )
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
        grads = tape.gradient(loss, self._trainable)
        pairs = zip(self._trainable, self._momenta, strict=True)
        updated = [pair for pair, grad in zip(pairs, grads, strict=True) if grad is not None]
        context = tf.distribute.get_replica_context()
        summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [g for g in grads if g is not None])
        context.merge_call(_apply_momentum, args=(updated, summed, lr))
        return loss

    def _predict_fn(self, images, mask):
        return tf.argmax(self._logits(images, mask, training=False), -1)

    def _predict_log_probs_fn(self, images, mask):
        """The predictions and class log-probabilities from one forward pass: the
        predictions are ``_predict_fn``'s, from the same logits."""
        logits = self._logits(images, mask, training=False)
        return tf.argmax(logits, -1), tf.nn.log_softmax(tf.cast(logits, tf.float32), -1)

    def _warm_up(self) -> None:
        """Traces both functions and runs them once (the runtime optimises a function's
        graph on its first call), at learning rate 0, then restores the initial state."""
        replicas = self.strategy.num_replicas_in_sync  # one image each
        images = tf.zeros([replicas, self.image_size, self.image_size, 3], tf.uint8)
        mask = self.class_mask()
        one_step = tf.zeros([1, replicas], tf.int64)
        self._train_steps(images, tf.zeros([replicas], tf.int64), one_step, tf.zeros([1]), mask)
        self._predict(images, mask)
        self.reset()

    def reset(self) -> None:
        """Restores every weight (the module's and the head's) and zeroes the momenta."""
        for var, value in zip(self.model.variables, self._initial, strict=True):
            var.assign(value)
        for momentum in self._momenta:
            momentum.assign(tf.zeros_like(momentum))

    def accuracy(self, data, num_classes: int | None = None) -> float:
        """Accuracy on ``data``: (images, labels) arrays, or an iterable of such batches
        (``images.StreamedSplit``), read once."""
        return self.evaluate(data, num_classes)["accuracy"]

    def evaluate(self, data, num_classes: int | None = None, keep: bool = False) -> dict:
        """``accuracy`` on ``data`` (read once); with ``keep``, also every example's
        class log-probabilities (``log_probs``, float16 ``[n, num_classes]``: compact,
        and within 1/2000 of each value) and the ``labels``."""
        mask = self.class_mask(num_classes)
        classes = self.max_classes if num_classes is None else num_classes
        batches = (
            ((data[0][i : i + self.eval_batch], data[1][i : i + self.eval_batch])
             for i in range(0, len(data[1]), self.eval_batch))
            if isinstance(data, tuple) else data
        )  # fmt: skip
        correct = total = 0
        kept, seen = [], []
        for images, labels in batches:
            _check_labels(labels, classes)
            if keep:
                predictions, log_probs = self._predict_log_probs(tf.constant(images), mask)
                kept.append(log_probs.numpy()[:, :classes])
                seen.append(np.asarray(labels))
            else:
                predictions = self._predict(tf.constant(images), mask)
            correct += int(np.sum(predictions.numpy() == labels))
            total += len(labels)
        if total == 0:
            raise ValueError(f"no examples to evaluate {self.handle} on")
        out = {"accuracy": correct / total}
        if keep:
            # float16's range ends at -65504: a log-probability below is no probability.
            log_probs = np.maximum(np.concatenate(kept), np.finfo(np.float16).min)
            out.update(log_probs=log_probs.astype(np.float16), labels=np.concatenate(seen))
        return out

    def run(
        self,
        train: Arrays,
        evaluate: Arrays,
        hp: HParams,
        seed: int,
        num_classes: int | None = None,
        keep: bool = False,
    ) -> dict:
        """Trains from the initial weights with `hp` on a task of `num_classes` classes
        (default: `max_classes`); returns accuracy and loss curve, and with ``keep`` the
        evaluation set's log-probabilities and labels (``evaluate``)."""
        mask = self.class_mask(num_classes)
        images, labels = train
        _check_labels(labels, self.max_classes if num_classes is None else num_classes)
        replicas = self.strategy.num_replicas_in_sync
        if hp.batch_size % replicas:
            raise ValueError(
                f"batch size {hp.batch_size} does not split over {replicas} replicas; "
                "make config.finetune.batch_size a multiple of the replicas"
            )
        self.reset()
        start = time.perf_counter()
        indices = batch_indices(len(labels), hp.batch_size, hp.steps, seed)
        rates = np.array([learning_rate_at(step, hp) for step in range(hp.steps)], np.float32)
        step_losses = self._train_steps(
            tf.constant(images), tf.constant(labels, tf.int64), tf.constant(indices),
            tf.constant(rates), mask,
        )  # fmt: skip
        losses = self.losses = [float(x) for x in step_losses.numpy()]
        bad = next((i for i, x in enumerate(losses) if not np.isfinite(x)), None)
        if bad is not None:
            raise FloatingPointError(
                f"module {self.handle}: loss became {losses[bad]} at step {bad} with {hp}"
            )
        train_seconds = time.perf_counter() - start
        evaluation = self.evaluate(evaluate, num_classes, keep)
        return {
            **evaluation,
            "seed": seed,
            "first_loss": losses[0],
            "final_loss": losses[-1],
            "train_seconds": train_seconds,
            "seconds": time.perf_counter() - start,
        }


def _apply_momentum(strategy, updated, grads, lr) -> None:
    """TF1's momentum step (``m = 0.9 m + g; w -= lr m``) on every replica's copy of
    each (variable, momentum) pair, in cross-replica context: ``grads`` are the sums
    over replicas, the same on each."""

    def update(var, momentum, grad):
        # Inside the update, `momentum` (a distributed variable) is this replica's copy.
        momentum.assign(MOMENTUM * momentum + grad)
        var.assign_sub(tf.cast(lr, var.dtype) * momentum)

    for (var, momentum), grad in zip(updated, grads, strict=True):
        strategy.extended.update(var, update, args=(momentum, grad), group=False)


def _check_labels(labels: np.ndarray, num_classes: int) -> None:
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels span [{labels.min()}, {labels.max()}], outside a task of {num_classes} classes"
        )


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__

r"""Fine-tuning throughput: ``FineTuner.run`` against a bare ``tf.function`` train step
on the same hub module, batch and images.

    python -m vtab_eval.bench.finetune_step --module=runs/demo/hub/local/experts/bit/r26x0.25/embedded_upstream.32px/baseline/1
    python -m vtab_eval.bench.finetune_step --module=... --image_size=224 --batch=64 --steps=50

The bare side is what a user would write: ``hub.KerasLayer(trainable=True)`` (loaded
through ``hub_loader``, which checks the module as every load does) plus a
dense head, softmax cross-entropy and SGD with momentum, one ``tf.function`` call per
step on a batch already on the device. The FineTuner side is a whole protocol run
(``run``: batches drawn from the training set, a learning-rate schedule, all steps in
one call) minus its evaluation. Rounds alternate between the two sides and the medians
are compared, so machine load hits both alike. Target: ratio >= 0.9.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras
from absl import app, flags

from fanout import cli
from vtab_eval.finetune.hyperparams import HParams
from vtab_eval.finetune.tuner import FineTuner
from vtab_eval.images import to_float
from vtab_eval.pool import hub_loader

NUM_CLASSES = 10


def bare_step(handle: str, image_size: int):
    """The plain train step: ``step(images, labels)`` under one ``tf.function``."""
    inputs = keras.Input([image_size, image_size, 3], dtype=tf.float32)
    features = hub_loader.load(handle, trainable=True)(inputs)  # checked, as every load
    model = keras.Model(inputs, keras.layers.Dense(NUM_CLASSES)(features))
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(to_float(images), training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            )
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return step


def measure(handle: str, image_size: int, batch: int, steps: int, rounds: int) -> dict:
    """Images per second of both sides, their medians over ``rounds`` and the ratio."""
    rng = np.random.default_rng(0)
    n = max(batch, 200)
    images = rng.integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, n).astype(np.int64)
    tuner = FineTuner(handle, NUM_CLASSES, image_size, eval_batch=batch)
    hp = HParams(learning_rate=0.01, steps=steps, batch_size=batch, warmup_steps=0,
                 decay_boundaries=())  # fmt: skip
    step = bare_step(handle, image_size)
    fixed = tf.constant(images[:batch]), tf.constant(labels[:batch])
    step(*fixed).numpy()  # traced and run once, as the FineTuner's build does
    ours, bare = [], []
    for _ in range(rounds):
        result = tuner.run((images, labels), (images[:batch], labels[:batch]), hp, seed=0)
        ours.append(steps * batch / result["train_seconds"])
        start = time.perf_counter()
        for _ in range(steps):
            loss = step(*fixed)
        loss.numpy()
        bare.append(steps * batch / (time.perf_counter() - start))
    figures = {"finetuner": statistics.median(ours), "bare": statistics.median(bare)}
    return {**figures, "ratio": figures["finetuner"] / figures["bare"]}


def define_flags() -> None:
    flags.DEFINE_string("module", None, "A hub module directory (a feature vector).")
    flags.DEFINE_integer("image_size", 32, "Input side in pixels.")
    flags.DEFINE_integer("batch", 64, "Images per step.")
    flags.DEFINE_integer("steps", 40, "Steps per round.")
    flags.DEFINE_integer("rounds", 3, "Rounds per side, alternating.")
    flags.mark_flag_as_required("module")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    with cli.user_errors("vtab_eval.bench.finetune_step"):
        figures = measure(f.module, f.image_size, f.batch, f.steps, f.rounds)
    print(
        f"fine-tuning step, {f.image_size} px, batch {f.batch}: FineTuner "
        f"{figures['finetuner']:,.0f} img/s, bare step {figures['bare']:,.0f} img/s, "
        f"ratio {figures['ratio']:.3f} (target >= 0.9)"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.flags_parser("vtab_eval.bench.finetune_step"))

r"""Trainer throughput against a bare ``tf.function`` train step (prints figures).

    python -m experts.bench.trainer_overhead --config=experts/configs/baseline.py:cpu

Both run the config's model, batch and loss on the same in-memory batches, so the
ratio isolates what the trainer adds: the distributed step, weight decay, metrics,
logging, TensorBoard and periodic checkpoints. Target: a ratio of at least 0.9.
"""

from __future__ import annotations

import tempfile
import time

import tensorflow as tf
import tf_keras as keras
from absl import app, flags

from experts import jobs
from experts.configs import upstream
from experts.models import resnet_v2
from experts.training import loop, schedules
from fanout import cli


def batches(batch: int, image_size: int, nodes: int, count: int = 8) -> tf.data.Dataset:
    images = tf.random.uniform([count, batch, image_size, image_size, 3])
    targets = tf.cast(tf.random.uniform([count, batch, nodes]) < 0.01, tf.float32)
    ds = tf.data.Dataset.from_tensor_slices({"image": images, "targets": targets})
    return ds.cache().repeat().prefetch(tf.data.AUTOTUNE)


def bare_throughput(cfg, steps: int, nodes: int) -> float:
    model = resnet_v2.ResNetV2(cfg.model.size, nodes).build_for(cfg.model.image_size)
    peak = schedules.scaled_learning_rate(cfg.train.base_lr, cfg.train.global_batch)
    optimizer = keras.optimizers.SGD(peak, momentum=cfg.train.momentum)
    iterator = iter(batches(cfg.train.global_batch, cfg.model.image_size, nodes))

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            logits = model(batch["image"], training=True)["logits"]
            loss = tf.reduce_mean(jobs.sigmoid_loss(batch["targets"], logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    for _ in range(cfg.train.log_every):  # the same warm-up the trainer excludes
        step(next(iterator))
    start = time.perf_counter()
    for _ in range(steps):
        loss = step(next(iterator))
    loss.numpy()
    return steps * cfg.train.global_batch / (time.perf_counter() - start)


def trainer_throughput(cfg, steps: int, nodes: int) -> float:
    job = loop.Job(
        name="benchmark",
        build_model=lambda: resnet_v2.ResNetV2(cfg.model.size, nodes).build_for(
            cfg.model.image_size
        ),
        dataset_fn=lambda ctx, batch, seed, start: batches(batch, cfg.model.image_size, nodes),
        per_example_loss=lambda m, b: jobs.sigmoid_loss(
            b["targets"], m(b["image"], training=True)["logits"]
        ),
    )
    train = cfg.train.copy_and_resolve_references()
    train.total_steps = steps + train.log_every
    with tempfile.TemporaryDirectory() as workdir:
        return loop.train(job, train, workdir)["images_per_second"]


def define_flags() -> None:
    """Defines this binary's flags; called only when it runs as a program, so that
    importing the module never claims flag names other binaries also define."""
    cli.define_config("experts.bench.trainer_overhead", "experts/configs/baseline.py:cpu")
    flags.DEFINE_integer("steps", 200, "Timed steps for each side.")
    flags.DEFINE_integer("nodes", 1000, "Sigmoid outputs (hierarchy nodes).")


def main(argv):
    del argv
    cfg = flags.FLAGS.config
    bare = bare_throughput(cfg, flags.FLAGS.steps, flags.FLAGS.nodes)
    trainer = trainer_throughput(cfg, flags.FLAGS.steps, flags.FLAGS.nodes)
    print(
        f"model {cfg.model.size} at {cfg.model.image_size}px, global batch "
        f"{cfg.train.global_batch}, {flags.FLAGS.nodes} sigmoid outputs, {flags.FLAGS.steps} steps"
    )
    print(f"bare tf.function step  {bare:8,.0f} img/s")
    print(f"trainer (loop.train)   {trainer:8,.0f} img/s")
    print(f"ratio                  {trainer / bare:8.3f}")


if __name__ == "__main__":
    define_flags()
    parser = cli.flags_parser("experts.bench.trainer_overhead", rules=upstream.RULES)
    app.run(main, flags_parser=parser)

r"""Prints a config's model: parameters, adapter overhead, and measured throughput.

    python -m experts.models.summary --config=experts/configs/baseline.py:cpu

Throughput is a forward+backward pass of a training step on random images at the
preset's resolution, timed after a warm-up step, so it is the figure that bounds
upstream training on this machine.
"""

from __future__ import annotations

import time

import tensorflow as tf
import tf_keras as keras
from absl import flags

import fanout.flags
from experts.configs import upstream
from experts.models import resnet_v2


def count(variables) -> int:
    return int(sum(v.shape.num_elements() for v in variables))


def train_step_throughput(
    model: resnet_v2.ResNetV2, image_size: int, batch: int, steps: int
) -> float:
    """Images per second through one SGD step of a multi-label sigmoid loss."""
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    images = tf.random.uniform([batch, image_size, image_size, 3])
    labels = tf.cast(tf.random.uniform([batch, model.num_classes]) < 0.1, tf.float32)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = model(images, training=True)["logits"]
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits))
        optimizer.apply_gradients(
            zip(
                tape.gradient(loss, model.trainable_variables),
                model.trainable_variables,
                strict=True,
            )
        )
        return loss

    step().numpy()  # warm-up: tracing and variable creation
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.numpy()
    return batch * steps / (time.perf_counter() - start)


def main(cfg):
    size, image_size = cfg.model.size, cfg.model.image_size
    backbone = resnet_v2.ResNetV2(size).build_for(image_size)
    with_adapter = resnet_v2.ResNetV2(size, num_experts=1).build_for(image_size)
    adapters = count(with_adapter.adapter_variables)
    model = resnet_v2.ResNetV2(size, num_classes=1000).build_for(image_size)
    rate = train_step_throughput(model, image_size, flags.FLAGS.batch_size, flags.FLAGS.steps)
    print(f"preset            {cfg.preset}")
    print(f"architecture      BiT ResNet-v2 {size} at {image_size}px")
    print(f"feature dim       {backbone.feature_dim}")
    print(f"backbone params   {count(backbone.weights):,}")
    print(
        f"one adapter set   {adapters:,} ({100 * adapters / count(backbone.weights):.1f}% of backbone)"
    )
    print(
        f"train step        {rate:,.0f} img/s (batch {flags.FLAGS.batch_size}, 1000-way head, this machine)"
    )


if __name__ == "__main__":
    # How long to time, not what is timed (that is the config's model): flags of their own.
    flags.DEFINE_integer("batch_size", 64, "Images per timed step.")
    flags.DEFINE_integer("steps", 5, "Timed steps (after one warm-up step).")
    fanout.flags.launch(
        main, "experts.models.summary", "experts/configs/baseline.py:cpu", workdir=False,
        rules=upstream.RULES,
    )  # fmt: skip

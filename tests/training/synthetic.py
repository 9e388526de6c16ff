"""A tiny learnable classification job on generated images, shared by the loop tests
and the multi-worker subprocesses (which must see identical data)."""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from experts.models import resnet_v2
from experts.training import loop

NUM_CLASSES, NUM_IMAGES, IMAGE_SIZE = 4, 64, 32


def images_and_labels():
    rng = np.random.RandomState(0)
    labels = rng.randint(NUM_CLASSES, size=NUM_IMAGES)
    images = rng.uniform(0, 0.5, size=(NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE, 3))
    # Class-dependent colour: classes 0-2 brighten one channel, class 3 all of them.
    tint = np.eye(4, 3, dtype=np.float32)
    tint[3] = 1.0
    images += 0.4 * tint[labels][:, None, None, :]
    return images.astype(np.float32), labels.astype(np.int32)


def dataset_fn(ctx, per_replica_batch, seed, start=0, fail_after=None):
    images, labels = images_and_labels()
    # Shuffled with NumPy, not tf.data: tf.data's seeds combine with the graph-level
    # seed, which differs between eager code and the strategy's input functions.
    rng = np.random.RandomState(seed)
    order = np.concatenate([rng.permutation(NUM_IMAGES) for _ in range(100)])[start:]
    ds = tf.data.Dataset.from_tensor_slices(order).map(
        lambda i: {"image": tf.gather(images, i), "label": tf.gather(labels, i)}
    )
    if fail_after is not None:  # simulates a crash after `fail_after` more examples
        ds = ds.enumerate().map(
            lambda i, x: (tf.debugging.assert_less(i, tf.cast(fail_after, tf.int64)), x)[1]
        )
    ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
    return ds.batch(per_replica_batch, drop_remainder=True)


def job(fail_after=None, dtype=None):
    def per_example_loss(model, batch):
        logits = model(batch["image"], training=True)["logits"]
        return tf.nn.sparse_softmax_cross_entropy_with_logits(batch["label"], logits)

    def evaluate(model):
        images, labels = images_and_labels()
        logits = model(images)["logits"]
        return {"accuracy": float(np.mean(np.argmax(logits, -1) == labels))}

    def build_model():
        # Same initial weights in every process and under every strategy.
        keras.utils.set_random_seed(0)
        return resnet_v2.ResNetV2("r14x0.125", NUM_CLASSES, dtype=dtype).build_for(IMAGE_SIZE)

    return loop.Job(
        name="synthetic",
        build_model=build_model,
        dataset_fn=lambda ctx, b, s, start: dataset_fn(ctx, b, s, start, fail_after),
        per_example_loss=per_example_loss,
        evaluate=evaluate,
    )


def config(**overrides):
    cfg = loop.default_train_config()
    cfg.update(
        dict(
            total_steps=4,
            global_batch=8,
            log_every=1,
            checkpoint_every=2,
            base_lr=0.05,
            weight_decay=1e-4,
        )
    )
    cfg.update(overrides)
    return cfg

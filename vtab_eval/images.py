"""Task images as the evaluation feeds them to modules.

Images follow VTAB's task_adaptation preprocessing: decoded, resized (bilinear, no crop,
no augmentation: flips and crops would change the labels of structured tasks such as
dSprites orientation or position) to `image_size` square, kept as uint8 and scaled to
[0, 1] (the hub contract's input range) at use.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def load_images(task, split: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All examples of one split: uint8 `[n, image_size, image_size, 3]` and int64 `[n]`."""

    def resize(image, label):
        image = tf.image.resize(tf.cast(image, tf.float32), [image_size, image_size])
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

    ds = task.as_dataset(split).map(resize, num_parallel_calls=tf.data.AUTOTUNE).batch(1024)
    images, labels = [], []
    for x, y in ds:
        images.append(x.numpy())
        labels.append(y.numpy())
    if not images:
        raise ValueError(f"task {task.spec}: split {split!r} is empty")
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def to_float(images: tf.Tensor) -> tf.Tensor:
    """uint8 -> float32 in [0, 1], the hub contract's input range."""
    return tf.cast(images, tf.float32) / 255.0

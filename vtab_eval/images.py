"""Task images as the evaluation feeds them to modules.

Images follow VTAB's task_adaptation preprocessing: decoded, resized (bilinear, no crop,
no augmentation: flips and crops would change the labels of structured tasks such as
dSprites orientation or position) to `image_size` square, kept as uint8 and scaled to
[0, 1] (the hub contract's input range) at use.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def resized(task, split: str, image_size: int, batch_size: int = 1024) -> tf.data.Dataset:
    """A split's examples in order, batched: uint8 `[b, image_size, image_size, 3]` and
    int64 `[b]`."""

    def resize(image, label):
        image = tf.image.resize(tf.cast(image, tf.float32), [image_size, image_size])
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), tf.cast(
            label, tf.int64
        )

    ds = task.as_dataset(split).map(resize, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(1)


def load_images(task, split: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All examples of one split: uint8 `[n, image_size, image_size, 3]` and int64 `[n]`."""
    images, labels = [], []
    for x, y in resized(task, split, image_size):
        images.append(x.numpy())
        labels.append(y.numpy())
    if not images:
        raise ValueError(f"task {task.spec}: split {split!r} is empty")
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


class StreamedSplit:
    """A split read batch by batch each time it is iterated, for evaluation sets too
    large to hold decoded (a VTAB test split at 224 px can take gigabytes): memory is
    one batch, at the cost of decoding the split once per evaluation."""

    def __init__(self, task, split: str, image_size: int, batch_size: int):
        self.task, self.split = task, split
        self.image_size, self.batch_size = int(image_size), int(batch_size)

    def __iter__(self):
        for images, labels in resized(self.task, self.split, self.image_size, self.batch_size):
            yield images.numpy(), labels.numpy()

    def __len__(self) -> int:
        return self.task.num_examples(self.split)


def decoded_bytes(task, split: str, image_size: int) -> int:
    """What a split takes in memory once decoded at ``image_size``."""
    return task.num_examples(split) * (image_size * image_size * 3 + 8)


def to_float(images: tf.Tensor) -> tf.Tensor:
    """uint8 -> float32 in [0, 1], the hub contract's input range."""
    return tf.cast(images, tf.float32) / 255.0

"""Decoding and training augmentation of upstream images, per example and per batch.

``Augment`` says what training does to an image (``config.data.augment``): a random
crop of a fraction of its area (log-uniform aspect ratio in ``CROP_ASPECT``) resized
back to the model's input, and for natural images a horizontal flip. Both functions
draw their randomness from a stateless seed pair, so a pipeline is reproducible.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Augment:
    """Training augmentation: a random crop of ``crop_area`` of the image (area
    fraction range), resized back, and an optional horizontal flip."""

    crop_area: tuple[float, float] = (0.08, 1.0)
    flip: bool = True

    @classmethod
    def from_config(cls, config) -> Augment:
        return cls(tuple(float(a) for a in config.crop_area), bool(config.flip))


# Inception-style crops and flips, as BiT trains upstream on natural images.
INCEPTION = Augment()
# Glyphs fill 70-90% of the canvas, so a smaller crop loses the glyph, and a mirrored
# glyph is another glyph (or none): the embedded upstream's own setting.
GLYPHS = Augment(crop_area=(0.6, 1.0), flip=False)
CROP_ASPECT = (3 / 4, 4 / 3)


def preprocess(
    encoded: tf.Tensor,
    image_size: int,
    training: bool,
    seed: tf.Tensor | None = None,
    augment: Augment = GLYPHS,
) -> tf.Tensor:
    """Encoded image -> float32 ``[image_size, image_size, 3]`` in [0, 1]. In training, a
    random crop (area and aspect ratio ranges) resized to ``image_size``, randomised by the
    stateless ``seed`` (shape [2]) so that a pipeline is reproducible."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.image.convert_image_dtype(image, tf.float32)
    if training:
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image),
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            seed=seed,
            area_range=augment.crop_area,
            aspect_ratio_range=CROP_ASPECT,
            min_object_covered=0.0,
            use_image_if_no_bounding_boxes=True,
        )
        image = tf.slice(image, begin, size)
        if augment.flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
    image = tf.image.resize(image, [image_size, image_size], antialias=True)
    image.set_shape([image_size, image_size, 3])
    return tf.clip_by_value(image, 0.0, 1.0)


def preprocess_batch(
    images: tf.Tensor,
    image_size: int,
    training: bool,
    seed: tf.Tensor | None = None,
    augment: Augment = GLYPHS,
) -> tf.Tensor:
    """``preprocess`` for a batch of same-sized uint8 images ``[b, h, w, 3]``: float32
    ``[b, image_size, image_size, 3]`` in [0, 1]. Training crops one random box per image
    (area fraction uniform in ``augment.crop_area``, log aspect ratio uniform in
    ``CROP_ASPECT``, clipped to the image; the stateless ``seed`` pair drives the whole batch) and resizes
    it bilinearly with ``crop_and_resize``."""
    images = tf.convert_to_tensor(images)
    batch = tf.shape(images)[0]
    if not training:
        out = tf.image.convert_image_dtype(images, tf.float32)
        if images.shape[1:3] != (image_size, image_size):
            out = tf.image.resize(out, [image_size, image_size], antialias=True)
        return tf.clip_by_value(out, 0.0, 1.0)
    u = tf.random.stateless_uniform([batch, 5], seed=seed)
    low, high = augment.crop_area
    area = low + (high - low) * u[:, 0]
    log_lo, log_hi = np.log(CROP_ASPECT[0]), np.log(CROP_ASPECT[1])
    aspect = tf.exp(log_lo + (log_hi - log_lo) * u[:, 1])  # width / height
    height = tf.minimum(tf.sqrt(area / aspect), 1.0)
    width = tf.minimum(tf.sqrt(area * aspect), 1.0)
    top = (1.0 - height) * u[:, 2]
    left = (1.0 - width) * u[:, 3]
    boxes = tf.stack([top, left, top + height, left + width], axis=1)
    out = tf.image.crop_and_resize(
        tf.cast(images, tf.float32), boxes, tf.range(batch), [image_size, image_size]
    )
    if augment.flip:
        out = tf.where(u[:, 4, None, None, None] < 0.5, out[:, :, ::-1], out)
    out.set_shape([None, image_size, image_size, 3])
    return tf.clip_by_value(out / 255.0, 0.0, 1.0)

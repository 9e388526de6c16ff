"""dSprites, generated from its own factors (no download).

dSprites (Matthey et al., 2017) is the full product of 3 shapes (square, ellipse, heart),
6 scales in [0.5, 1], 40 orientations in [0, 2pi] and 32 x 32 positions in [0, 1]^2,
drawn white on black at 64x64. This builder draws a seeded sample of those factor
combinations with the same label features as tfds' `dsprites`, so the VTAB dSprites
label binning applies unchanged.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from vtab_eval.tasks.embedded import common

SHAPES = ("square", "ellipse", "heart")
NUM_SCALES, NUM_ORIENTATIONS, NUM_POSITIONS = 6, 40, 32
SIZE = 64
SUPERSAMPLE = 4
# At scale 1 a sprite spans about a third of the image; centres stay inside the frame.
BASE_EXTENT = 20.0
CENTRE_MARGIN = 10.0


def _outline(shape: str) -> np.ndarray:
    """Unit outline (about [-0.5, 0.5]^2) of a shape as an (n, 2) polygon."""
    t = np.linspace(0.0, 2.0 * np.pi, 96, endpoint=False)
    if shape == "square":
        return np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    if shape == "ellipse":
        return np.stack([0.5 * np.cos(t), 0.25 * np.sin(t)], axis=1)
    if shape == "heart":
        x = 16 * np.sin(t) ** 3
        y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        return np.stack([x, -y], axis=1) / 34.0  # Image y points down: tip at the bottom.
    raise ValueError(f"dsprites: unknown shape {shape!r}")


_OUTLINES = {name: _outline(name) for name in SHAPES}


def factor_values(shape: int, scale: int, orientation: int, x: int, y: int):
    """The continuous values behind the integer factor labels, as in dSprites."""
    return (
        0.5 + 0.1 * scale,  # 0.5 .. 1.0
        2.0 * np.pi * orientation / (NUM_ORIENTATIONS - 1),  # 0 .. 2pi inclusive
        x / (NUM_POSITIONS - 1),
        y / (NUM_POSITIONS - 1),
    )


def render(shape: int, scale: int, orientation: int, x: int, y: int) -> np.ndarray:
    """A (64, 64, 1) uint8 image holding 0 and 1, like tfds' dsprites."""
    from PIL import Image, ImageDraw

    scale_v, angle, x_v, y_v = factor_values(shape, scale, orientation, x, y)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = _OUTLINES[SHAPES[shape]] @ rot.T * (BASE_EXTENT * scale_v)
    span = SIZE - 2 * CENTRE_MARGIN
    points = points + [CENTRE_MARGIN + x_v * span, CENTRE_MARGIN + y_v * span]
    canvas = Image.new("L", (SIZE * SUPERSAMPLE, SIZE * SUPERSAMPLE), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in points * SUPERSAMPLE], fill=255)
    small = canvas.resize((SIZE, SIZE), Image.Resampling.BOX)
    return (np.asarray(small) >= 128).astype(np.uint8)[..., None]


class MiniVtabDsprites(common.EmbeddedBuilder):
    """dSprites drawn from its factors: a seeded sample of distinct factor combinations
    per split; the labels of tfds' dsprites."""

    DESCRIPTION = __doc__
    FULL_SIZES = common.SplitSizes(train=2000, validation=500, test=5000)

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(SIZE, SIZE, 1)),
            "label_shape": tfds.features.ClassLabel(num_classes=len(SHAPES)),
            "label_scale": tfds.features.ClassLabel(num_classes=NUM_SCALES),
            "label_orientation": tfds.features.ClassLabel(num_classes=NUM_ORIENTATIONS),
            "label_x_position": tfds.features.ClassLabel(num_classes=NUM_POSITIONS),
            "label_y_position": tfds.features.ClassLabel(num_classes=NUM_POSITIONS),
        }

    def _source_examples(self, sizes):
        dims = (len(SHAPES), NUM_SCALES, NUM_ORIENTATIONS, NUM_POSITIONS, NUM_POSITIONS)
        wanted = sum(n or 0 for n in sizes.as_dict().values())
        # Distinct factor combinations, dealt to the splits in order; 20% spare covers
        # images that symmetry makes identical (the square every 90 degrees), dropped.
        flat = np.random.default_rng(0).choice(
            int(np.prod(dims)), size=int(wanted * 1.2) + 32, replace=False
        )
        combos = np.stack(np.unravel_index(flat, dims), axis=1)
        return common.shared(
            {
                "image": render(shape, scale, orientation, x, y),
                "label_shape": shape,
                "label_scale": scale,
                "label_orientation": orientation,
                "label_x_position": x,
                "label_y_position": y,
            }
            for shape, scale, orientation, x, y in combos.tolist()
        )

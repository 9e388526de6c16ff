"""Specialized group: the level of a brain MRI slice, and low-resolution scanned digits."""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from vtab_eval.tasks.embedded import common

MRI_VOLUMES = ("t1", "gm", "wm")  # T1 template, grey- and white-matter probability maps.
MRI_LEVELS = 8
MRI_SIZE = 64
# Axial slices are dealt to splits by z mod 5 (0-2 train, 3 validation, 4 test), so every
# level has slices in every split and no slice is shared between splits.
MRI_SLICE_SPLITS = {"train": (0, 1, 2), "validation": (3,), "test": (4,)}


def load_mni152() -> dict[str, np.ndarray]:
    """The MNI152 2009a volumes shipped in the nilearn wheel, as float arrays in [0, 1]."""
    nilearn = common.require_module("nilearn", "nilearn")
    nib = common.require_module("nibabel", "nibabel")
    data_dir = os.path.join(os.path.dirname(nilearn.__file__), "datasets", "data")
    volumes = {}
    for name in MRI_VOLUMES:
        path = os.path.join(data_dir, f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz")
        volume = np.asarray(nib.load(path).dataobj, dtype=np.float32)
        volumes[name] = volume / max(float(np.percentile(volume, 99.5)), 1e-6)
    return volumes


def brain_levels(volumes: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Axial slice indices of each of MRI_LEVELS equal-height bins over the brain's extent."""
    tissue = (volumes["gm"] + volumes["wm"]) > 0.5
    z = np.nonzero(tissue.sum(axis=(0, 1)) > 200)[0]
    edges = np.linspace(z.min(), z.max() + 1, MRI_LEVELS + 1)
    return [
        np.arange(int(np.ceil(lo)), int(np.ceil(hi)))
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]


def render_slice(plane: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One augmented view of an axial plane (x, y) as a MRI_SIZE^2 uint8 image, anterior up.

    Rotation, scale, shift, left-right flip, gamma and noise make repeated draws of the
    same plane distinct, as scans of different heads would be.
    """
    from scipy import ndimage

    height, width = plane.shape[1], plane.shape[0]  # Displayed: rows = -y, cols = x.
    image_plane = np.flipud(plane.T)
    angle = np.deg2rad(rng.uniform(-20, 20))
    scale = rng.uniform(0.85, 1.15) * max(height, width) / MRI_SIZE
    flip = rng.choice([-1.0, 1.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rot @ np.diag([scale, scale * flip])
    centre_out = np.array([MRI_SIZE / 2, MRI_SIZE / 2])
    centre_in = np.array([height / 2, width / 2]) + rng.uniform(-0.08, 0.08, 2) * [height, width]
    offset = centre_in - matrix @ centre_out
    out = ndimage.affine_transform(
        image_plane, matrix, offset=offset, output_shape=(MRI_SIZE, MRI_SIZE), order=1
    )
    out = np.clip(out, 0, 1) ** rng.uniform(0.7, 1.4)
    out = out + rng.normal(0, 0.02, out.shape)
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)[..., None]


class MiniVtabBrainMri(common.EmbeddedBuilder):
    """Brain MRI (MNI152 from the nilearn wheel): which of 8 axial levels, inferior to
    superior, an augmented slice of the T1 template or a tissue map comes from."""

    DESCRIPTION = __doc__
    FULL_SIZES = common.SplitSizes(train=1000, validation=400, test=2000)

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(MRI_SIZE, MRI_SIZE, 1)),
            "label": tfds.features.ClassLabel(num_classes=MRI_LEVELS),
            "slice_z": tfds.features.Scalar(dtype=np.int32),
            "volume": tfds.features.ClassLabel(names=MRI_VOLUMES),
        }

    def _source_examples(self, sizes):
        volumes = load_mni152()
        levels = brain_levels(volumes)

        def examples(split: str, seed: int):
            rng = np.random.default_rng(seed)
            slices = [z[np.isin(z % 5, MRI_SLICE_SPLITS[split])] for z in levels]
            while True:  # The base class stops at the split's size.
                label = int(rng.integers(MRI_LEVELS))
                z = int(rng.choice(slices[label]))
                volume = int(rng.integers(len(MRI_VOLUMES)))
                plane = volumes[MRI_VOLUMES[volume]][:, :, z]
                yield {
                    "image": render_slice(plane, rng),
                    "label": label,
                    "slice_z": z,
                    "volume": volume,
                }

        return {split: examples(split, seed) for seed, split in enumerate(common.SPLIT_ORDER)}


DIGITS_CANVAS = 12  # the 8x8 scan lies at a random offset on a canvas this wide


class MiniVtabDigits8x8(common.EmbeddedBuilder):
    """Low-resolution scanned digits: scikit-learn's 1,797 8x8 digits (UCI optdigits,
    16 grey levels), each at a random offset on a 12x12 black canvas (a scan's crop that
    missed the digit's box: centred, B scored above the suite's 85% cap), split
    800 / 200 / the rest."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "The 8x8 digits as they are.",
        "1.1.0": "Each digit at a random offset on a 12x12 canvas.",
    }
    DESCRIPTION = __doc__
    FULL_SIZES = common.SplitSizes(train=800, validation=200, test=None)

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(DIGITS_CANVAS, DIGITS_CANVAS, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }

    def _source_examples(self, sizes):
        datasets = common.require_module("sklearn.datasets", "scikit-learn")
        digits = datasets.load_digits()  # Read from the wheel's own data files.
        images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
        order = np.random.default_rng(0).permutation(len(images))
        offsets = np.random.default_rng(1).integers(0, DIGITS_CANVAS - 8 + 1, size=(len(images), 2))

        def placed(i):
            canvas = np.zeros((DIGITS_CANVAS, DIGITS_CANVAS, 1), np.uint8)
            y, x = offsets[i]
            canvas[y : y + 8, x : x + 8, 0] = images[i]
            return canvas

        return common.shared({"image": placed(i), "label": int(digits.target[i])} for i in order)

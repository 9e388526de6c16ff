"""Structured group, rendered offline with pybullet's CPU TinyRenderer.

* smallNORB-like: toy-like objects from pybullet_data's `random_urdfs`, each seen from
  smallNORB's 18 azimuths x 9 elevations under one of 6 lights, grey, 96x96; split by
  object (no object is in two splits). Features mirror tfds' `smallnorb`.
* CLEVR-like: 3 to 10 cubes, spheres and cylinders in CLEVR's sizes and colours on a grey
  floor, seen from CLEVR's jittered camera; each object visible. Features mirror tfds'
  `clevr` (`pixel_coords` z is camera-space depth), so VTAB's label functions apply.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from vtab_eval.tasks.embedded import common


@contextlib.contextmanager
def bullet_client():
    pybullet = common.require_module("pybullet", "pybullet")
    client = pybullet.connect(pybullet.DIRECT)
    try:
        yield pybullet, client
    finally:
        pybullet.disconnect(client)


# --- smallNORB-like ----------------------------------------------------------------

NORB_SIZE = 96
NORB_AZIMUTHS = np.arange(0, 360, 20)  # 18, as smallNORB's label_azimuth
NORB_ELEVATIONS = np.arange(30, 75, 5)  # 9, as smallNORB's label_elevation (30..70)
NORB_LIGHTS = 6
# Objects per split (each contributes 18 x 9 = 162 views).
NORB_OBJECTS = {"train": 10, "validation": 3, "test": 10}


def norb_views(pb, client, urdf: str, rng: np.random.Generator) -> Iterator[dict]:
    """Every azimuth/elevation view of one object, each under a random light."""
    pb.resetSimulation(physicsClientId=client)
    body = pb.loadURDF(urdf, physicsClientId=client)
    lo, hi = (np.array(v) for v in pb.getAABB(body, physicsClientId=client))
    centre, extent = (lo + hi) / 2, float(np.linalg.norm(hi - lo))
    projection = pb.computeProjectionMatrixFOV(40, 1.0, 0.01 * extent, 10 * extent)
    for elevation_label, elevation in enumerate(NORB_ELEVATIONS):
        for azimuth_label, azimuth in enumerate(NORB_AZIMUTHS):
            light = int(rng.integers(NORB_LIGHTS))
            light_angle = 2 * np.pi * light / NORB_LIGHTS
            view = pb.computeViewMatrixFromYawPitchRoll(
                centre.tolist(), 1.6 * extent, float(azimuth), -float(elevation), 0, 2
            )
            _, _, rgba, _, _ = pb.getCameraImage(
                NORB_SIZE,
                NORB_SIZE,
                view,
                projection,
                renderer=pb.ER_TINY_RENDERER,
                lightDirection=[np.cos(light_angle), np.sin(light_angle), 1.0],
                shadow=0,
                physicsClientId=client,
            )
            rgb = np.reshape(np.asarray(rgba, np.uint8), (NORB_SIZE, NORB_SIZE, 4))[..., :3]
            grey = (rgb @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)
            yield {
                "image": grey[..., None],
                "label_azimuth": azimuth_label,
                "label_elevation": elevation_label,
                "label_lighting": light,
            }


class MiniVtabSmallnorb(common.EmbeddedBuilder):
    """smallNORB-like renders of pybullet_data's random objects, split by object."""

    DESCRIPTION = __doc__
    FULL_SIZES = common.SplitSizes(train=None, validation=None, test=None)

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(NORB_SIZE, NORB_SIZE, 1)),
            "instance": tfds.features.Text(),
            "label_azimuth": tfds.features.ClassLabel(num_classes=len(NORB_AZIMUTHS)),
            "label_elevation": tfds.features.ClassLabel(num_classes=len(NORB_ELEVATIONS)),
            "label_lighting": tfds.features.ClassLabel(num_classes=NORB_LIGHTS),
        }

    def _source_examples(self, sizes):
        pybullet_data = common.require_module("pybullet_data", "pybullet")
        root = os.path.join(pybullet_data.getDataPath(), "random_urdfs")
        names = common.stable_order(sorted(os.listdir(root)), salt="norb")
        objects, start = {}, 0
        for split in common.SPLIT_ORDER:
            objects[split] = names[start : start + NORB_OBJECTS[split]]
            start += NORB_OBJECTS[split]

        def examples(split: str, seed: int):
            rng = np.random.default_rng(seed)
            with bullet_client() as (pb, client):
                for name in objects[split]:
                    urdf = os.path.join(root, name, f"{name}.urdf")
                    for view in norb_views(pb, client, urdf, rng):
                        yield {"instance": name, **view}

        return {split: examples(split, seed) for seed, split in enumerate(common.SPLIT_ORDER)}


# --- CLEVR-like ----------------------------------------------------------------------

CLEVR_SHAPES = ("cube", "sphere", "cylinder")  # tfds clevr's ClassLabel order
CLEVR_SIZES = {"small": 0.35, "large": 0.7}
CLEVR_COLORS = {
    "gray": (87, 87, 87),
    "blue": (42, 75, 215),
    "brown": (129, 74, 25),
    "yellow": (255, 238, 51),
    "red": (173, 35, 35),
    "green": (29, 105, 20),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
}
CLEVR_CAMERA = np.array([7.358891487121582, -6.925790786743164, 4.958309173583984])
# Rendered at the stored size without shadows: anti-aliasing (rendering larger) and
# shadows each cost TinyRenderer about 3x, which would take the build past its minutes.
CLEVR_WIDTH, CLEVR_HEIGHT = 120, 80
CLEVR_VFOV = 33.4  # Blender's 35 mm lens on a 32 mm sensor at 3:2.
CLEVR_MIN_GAP = 0.25  # Between object surfaces, as CLEVR.
CLEVR_MIN_PIXELS = 12  # Per object (CLEVR: 200 at 480x320, 16x the area).
CLEVR_FLOOR = 12.0  # Half extent: fills the view, and no larger (bigger costs time).


def _clevr_scene(rng: np.random.Generator) -> list[dict]:
    """Random non-overlapping objects in [-3, 3]^2."""
    count = int(rng.integers(3, 11))
    while True:
        objects = []
        for _ in range(count):
            for _attempt in range(100):
                size = str(rng.choice(list(CLEVR_SIZES)))
                radius = CLEVR_SIZES[size]
                xy = rng.uniform(-3, 3, 2)
                if all(
                    np.linalg.norm(xy - o["xy"]) - radius - o["radius"] >= CLEVR_MIN_GAP
                    for o in objects
                ):
                    break
            else:
                break  # This layout is too crowded: start the scene again.
            objects.append(
                {
                    "shape": int(rng.integers(len(CLEVR_SHAPES))),
                    "size": size,
                    "radius": radius,
                    "color": int(rng.integers(len(CLEVR_COLORS))),
                    "xy": xy,
                    "rotation": float(rng.uniform(0, 360)),
                }
            )
        if len(objects) == count:
            return objects


def _add_object(pb, client, obj: dict) -> int:
    rgba = [c / 255 for c in list(CLEVR_COLORS.values())[obj["color"]]] + [1.0]
    r, shape = obj["radius"], CLEVR_SHAPES[obj["shape"]]
    if shape == "cube":
        half = r / np.sqrt(2)
        visual = pb.createVisualShape(
            pb.GEOM_BOX, halfExtents=[half] * 3, rgbaColor=rgba, physicsClientId=client
        )
        z = half
    elif shape == "sphere":
        visual = pb.createVisualShape(
            pb.GEOM_SPHERE, radius=r, rgbaColor=rgba, physicsClientId=client
        )
        z = r
    else:
        visual = pb.createVisualShape(
            pb.GEOM_CYLINDER, radius=r, length=2 * r, rgbaColor=rgba, physicsClientId=client
        )
        z = r
    orientation = pb.getQuaternionFromEuler([0, 0, np.deg2rad(obj["rotation"])])
    obj["xyz"] = np.array([obj["xy"][0], obj["xy"][1], z])
    return pb.createMultiBody(
        baseVisualShapeIndex=visual,
        basePosition=obj["xyz"].tolist(),
        baseOrientation=orientation,
        physicsClientId=client,
    )


def render_clevr_scene(pb, client, rng: np.random.Generator) -> dict | None:
    """One scene as a tfds `clevr`-like example, or None if an object is hidden."""
    pb.resetSimulation(physicsClientId=client)
    floor = pb.createVisualShape(
        pb.GEOM_BOX, halfExtents=[CLEVR_FLOOR, CLEVR_FLOOR, 0.01], rgbaColor=[0.6, 0.6, 0.6, 1],
        physicsClientId=client,
    )  # fmt: skip
    floor_body = pb.createMultiBody(
        baseVisualShapeIndex=floor, basePosition=[0, 0, -0.01], physicsClientId=client
    )
    objects = _clevr_scene(rng)
    bodies = [_add_object(pb, client, obj) for obj in objects]
    camera = CLEVR_CAMERA + rng.uniform(-0.5, 0.5, 3)
    w, h = CLEVR_WIDTH, CLEVR_HEIGHT
    view = pb.computeViewMatrix(camera.tolist(), [0, 0, 0], [0, 0, 1])
    projection = pb.computeProjectionMatrixFOV(CLEVR_VFOV, w / h, 0.1, 100)
    _, _, rgba, _, seg = pb.getCameraImage(
        w, h, view, projection, renderer=pb.ER_TINY_RENDERER,
        lightDirection=[-3.0, -2.0, 6.0], shadow=0, physicsClientId=client,
    )  # fmt: skip
    seg = np.reshape(np.asarray(seg), (h, w))
    if any((seg == body).sum() < CLEVR_MIN_PIXELS for body in bodies):
        return None
    # Pixel coordinates and camera-space depth of each object's centre.
    view_m = np.asarray(view, np.float64).reshape(4, 4).T  # pybullet: column-major
    proj_m = np.asarray(projection, np.float64).reshape(4, 4).T
    pixel_coords = []
    for obj in objects:
        eye = view_m @ np.append(obj["xyz"], 1.0)
        clip = proj_m @ eye
        ndc = clip[:3] / clip[3]
        pixel_coords.append(
            [(ndc[0] + 1) / 2 * CLEVR_WIDTH, (1 - ndc[1]) / 2 * CLEVR_HEIGHT, -eye[2]]
        )
    image = np.reshape(np.asarray(rgba, np.uint8), (h, w, 4))[..., :3].copy()
    # Beyond the floor's far edge TinyRenderer leaves white; CLEVR has a grey backdrop.
    image[seg < 0] = np.median(image[seg == floor_body], axis=0).astype(np.uint8)
    return {
        "image": image,
        "objects": {
            "shape": [o["shape"] for o in objects],
            "size": [list(CLEVR_SIZES).index(o["size"]) for o in objects],
            "color": [o["color"] for o in objects],
            "rotation": np.array([o["rotation"] for o in objects], np.float32),
            "3d_coords": np.array([o["xyz"] for o in objects], np.float32),
            "pixel_coords": np.array(pixel_coords, np.float32),
        },
    }


class MiniVtabClevr(common.EmbeddedBuilder):
    """CLEVR-like scenes rendered with pybullet: tfds clevr's object features."""

    DESCRIPTION = __doc__
    FULL_SIZES = common.SplitSizes(train=1000, validation=300, test=2000)

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(CLEVR_HEIGHT, CLEVR_WIDTH, 3)),
            "objects": tfds.features.Sequence(
                {
                    "shape": tfds.features.ClassLabel(names=CLEVR_SHAPES),
                    "size": tfds.features.ClassLabel(names=list(CLEVR_SIZES)),
                    "color": tfds.features.ClassLabel(names=list(CLEVR_COLORS)),
                    "rotation": tfds.features.Scalar(dtype=np.float32),
                    "3d_coords": tfds.features.Tensor(shape=(3,), dtype=np.float32),
                    "pixel_coords": tfds.features.Tensor(shape=(3,), dtype=np.float32),
                }
            ),
        }

    def _source_examples(self, sizes):
        def examples(seed: int):
            # One seed per split: scenes are independent random draws, never shared.
            rng = np.random.default_rng(1000 + seed)
            with bullet_client() as (pb, client):
                while True:  # The base class stops at the split's size.
                    example = render_clevr_scene(pb, client, rng)
                    if example is not None:
                        yield example

        return {split: examples(seed) for seed, split in enumerate(common.SPLIT_ORDER)}

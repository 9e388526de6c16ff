"""Tiny hub modules and in-memory tasks for the vtab_eval tests.

The modules meet the hub contract (`module(images, training=False) -> [batch, dim]`,
float32 images in [0, 1] of any size, trainable variables, a serving signature) and are
written in the tfhub-style tree with `expert_info.json`, so the tests do not depend on
`hub_export`. Their features are chosen so the right answer of each proxy is known:

* ``mean_color``: a linear map of the image's mean colour (separates colour classes);
* ``corner``: a linear map of the top-left 2x2 pixels, which the tasks fill with noise;
* ``conv``: a 3x3 convolution, ReLU and global average pooling (a real little net).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from vtab_eval.pool import expert_pool as pool
from vtab_eval.tasks import Task

_IMAGES = tf.TensorSpec([None, None, None, 3], tf.float32)


class TinyModule(tf.Module):
    input_spec = _IMAGES  # the image batches its saved functions accept

    def __init__(self, mode: str, dim: int = 8, seed: int = 0, kernel: np.ndarray | None = None):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.mode = mode
        in_dim = {"mean_color": 3, "corner": 12, "conv": 16}[mode]
        if kernel is None:
            kernel = rng.normal(size=(in_dim, dim)) / np.sqrt(in_dim)
        self.kernel = tf.Variable(np.asarray(kernel, np.float32), name="kernel")
        self.bias = tf.Variable(np.zeros(kernel.shape[1], np.float32), name="bias")
        if mode == "conv":
            self.conv = tf.Variable(rng.normal(size=(3, 3, 3, 16)).astype(np.float32) / 5)
        for training in (False, True):
            self.__call__.get_concrete_function(self.input_spec, training=training)

    @tf.function
    def __call__(self, images, training=False):
        if self.mode == "mean_color":
            pre = tf.reduce_mean(images, axis=[1, 2])
        elif self.mode == "corner":
            pre = tf.reshape(images[:, :2, :2, :], [-1, 12])
        else:
            h = tf.nn.relu(tf.nn.conv2d(images, self.conv, 1, "SAME"))
            pre = tf.reduce_mean(h, axis=[1, 2])
        return tf.matmul(pre, self.kernel) + self.bias


class WritesAFile(TinyModule):
    """A feature module that also writes a file each time it runs."""

    def __init__(self, target: str):
        self.target = target
        super().__init__("mean_color")

    @tf.function
    def __call__(self, images, training=False):
        tf.io.write_file(self.target, "written by a module")
        return tf.matmul(tf.reduce_mean(images, axis=[1, 2]), self.kernel) + self.bias


class FixedSize(TinyModule):
    """A feature module that accepts 224x224 images only, as many published ones do."""

    input_spec = tf.TensorSpec([None, 224, 224, 3], tf.float32)

    def __init__(self):
        super().__init__("mean_color")


def save_module(path: Path, module: TinyModule, info: dict) -> Path:
    """Saves in the TF2 hub format: `hub.KerasLayer` reads `variables`,
    `trainable_variables` and `regularization_losses` off the root object, which a
    `tf.Module` computes as properties but does not save, hence the plain root."""
    path.mkdir(parents=True, exist_ok=True)
    root = tf.__internal__.tracking.AutoTrackable()
    root.net = module
    root.__call__ = module.__call__
    root.variables = list(module.variables)
    root.trainable_variables = list(module.trainable_variables)
    root.regularization_losses = []
    serving = module.__call__.get_concrete_function(module.input_spec, training=False)
    tf.saved_model.save(root, str(path), signatures={"serving_default": serving})
    (path / "expert_info.json").write_text(json.dumps(info))
    return path


def expert_info(name: str, kind: str = "full", check: bool = True, **extra) -> dict:
    """expert_info.json in the schema the pool reads (pool.SCHEMA_FIELDS, checked here;
    the contract tests hold hub_export's writer to the same reader). ``check=False``
    builds invalid ones on purpose."""
    collection = {"classifier": "bit-classifier", "epn": "bit-epn", "adapter": "bit-adapter"}
    info = {
        "schema_version": 1,
        "name": name,
        "kind": kind,
        "handle": f"tests/experts/{collection.get(kind, 'bit')}/tiny/tiny_upstream/{name}/1",
        "publisher": "tests",
        "collection": collection.get(kind, "bit"),
        "version": 1,
        "node": None if kind in ("baseline", "classifier", "epn") else name,
        "description": None,
        "arch": "tiny",
        "feature_dim": 8,
        "upstream": {"dataset": "tiny_upstream", "num_labels": 3, "train_images": 300},
        "images_seen": 100,
        "training": {"steps": 1},
        "input": {"range": [0.0, 1.0], "dtype": "float32", "layout": "NHWC", "size": [8, 8]},
        "output": {"feature_vector": [None, 8]},
        "provenance": {"made_by": "tests/vtab_eval/hub_fixtures.py"},
    }
    info.update(extra)
    return pool.check_info(info, f"hub_fixtures.expert_info({name!r})") if check else info


UPSTREAM_LABELS = ["l_red", "l_green", "l_blue"]
PRIORS = {
    "red": {"l_red": 0.9, "l_green": 0.05, "l_blue": 0.05},
    "green": {"l_red": 0.05, "l_green": 0.9, "l_blue": 0.05},
    "blue": {"l_red": 0.05, "l_green": 0.05, "l_blue": 0.9},
    "baseline": {"l_red": 1 / 3, "l_green": 1 / 3, "l_blue": 1 / 3},
}


def make_pool(root: Path, classifiers: bool = True) -> Path:
    """A hub tree: experts red (colour features: wins kNN on colour tasks), green and
    blue (corner noise), the baseline (corner noise), and, with `classifiers`, an EPN
    over the expert names and an upstream classifier over colour labels, both reading
    the mean colour, so domain prediction and label matching follow the dominant hue."""
    base = root / "tests" / "experts"
    modes = {"red": "mean_color", "green": "corner", "blue": "corner", "baseline": "corner"}
    for seed, (name, mode) in enumerate(modes.items()):
        kind = "baseline" if name == "baseline" else "full"
        info = expert_info(name, kind, label_distribution=PRIORS[name])
        save_module(base / "bit/tiny/tiny_upstream" / name / "1", TinyModule(mode, seed=seed), info)
    if classifiers:
        # Logits 10 * (mean colour - 0.5) per channel, in the label order red, green, blue.
        for kind, name, labels, activation in (
            ("epn", "epn", ["red", "green", "blue"], "sigmoid"),
            ("classifier", "upstream", UPSTREAM_LABELS, "sigmoid"),
        ):
            module = TinyModule("mean_color", kernel=10 * np.eye(3, dtype=np.float32))
            module.bias.assign(-5 * np.ones(3, np.float32))
            output = {"logits": [None, 3], "activation": activation, "labels": labels}
            info = expert_info(name, kind, output=output)
            save_module(base / f"bit-{kind}/tiny/tiny_upstream" / name / "1", module, info)
    return root


class ArrayTask(Task):
    """A task over in-memory arrays: `splits` maps each VTAB split to (uint8, int64)."""

    def __init__(self, spec, splits, num_classes, group="natural"):
        super().__init__(spec, num_classes, group)
        self.splits = splits

    def num_examples(self, split):
        self._check_split(split)
        return len(self.splits[split][1])

    def as_dataset(self, split, *, shuffle_files=False):
        self._check_split(split)
        return tf.data.Dataset.from_tensor_slices(self.splits[split])


def colour_task(spec: str, colours, sizes=(40, 10, 30), size: int = 8, seed: int = 0):
    """Classes are colours (plus mild pixel noise); the top-left 2x2 pixels are uniform
    noise. `sizes` = (train800, val200, test) examples; train800val200 is their union."""
    rng = np.random.default_rng(seed)
    colours = np.asarray(colours, np.float32)

    def make(n):
        labels = np.arange(n) % len(colours)
        rng.shuffle(labels)
        images = colours[labels][:, None, None, :] + rng.normal(0, 0.03, (n, size, size, 3))
        images[:, :2, :2, :] = rng.uniform(0, 1, (n, 2, 2, 3))
        return (np.clip(images, 0, 1) * 255).round().astype(np.uint8), labels.astype(np.int64)

    train, val, test = (make(n) for n in sizes)
    splits = {
        "train800": train,
        "val200": val,
        "train800val200": tuple(np.concatenate(p) for p in zip(train, val, strict=True)),
        "test": test,
    }
    return ArrayTask(spec, splits, num_classes=len(colours))


REDDISH = [(0.9, 0.1, 0.1), (0.6, 0.1, 0.1), (0.9, 0.35, 0.1), (0.9, 0.1, 0.35)]
GREENISH = [(0.1, 0.9, 0.1), (0.1, 0.6, 0.1), (0.35, 0.9, 0.1), (0.1, 0.9, 0.35)]


def probe_folder(root, nodes):
    """A specialisation probe folder (vtab_eval/report/probes.py) with one probe per node, each
    of four reddish colour classes, five noisy images each (top-left 2x2 pixels noise)."""
    rng = np.random.default_rng(0)
    manifest = {"version": 1, "upstream": "tiny", "image_size": 8, "probes": [], "skipped": {}}
    for n, node in enumerate(nodes):
        folder = f"{n:02d}-{node}"
        for c, colour in enumerate(REDDISH):
            for k in range(5):
                image = np.empty((8, 8, 3), np.float32)
                image[:] = colour
                image += rng.normal(0, 0.02, image.shape)
                image[:2, :2] = rng.uniform(0, 1, (2, 2, 3))
                path = root / folder / f"class{c}" / f"{k}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
                Image.fromarray(pixels).save(path)
        manifest["probes"].append({"node": node, "path": folder, "classes": 4, "images": 20})
    (root / "probes.json").write_text(json.dumps(manifest))
    return root

"""Task images in memory and their embeddings by any hub module, cached on disk (the
images decoded as `vtab_eval.images` says).

Embeddings are cached as `.npz` files keyed by handle, task, split and image size, so
every proxy (and every rerun) reuses one forward pass. A module is loaded once and its
forward pass traced once, at a fixed batch shape (the last batch is padded), for every
task it embeds; task images stay in memory up to a byte budget, so embedding the
suite module by module decodes each task once. The key also fingerprints local
modules (size and mtime of `saved_model.pb` and the variables index), so re-exporting
a module at the same path does not serve stale features. A store with a reduced
`precision` (`fanout.precision`: TensorFlow's mixed-precision graph rewrite) runs
every forward pass inside that rewrite and keys its cache by the precision too.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import logging

from fanout import precision as precision_lib
from vtab_eval import files
from vtab_eval.images import load_images, to_float
from vtab_eval.pool import hub_loader

CACHE_VERSION = 1


def fingerprint(handle: str) -> str:
    """Identifies a module's content cheaply: sizes and mtimes of its files for a local
    module, the handle itself for a remote one (tfhub versions are immutable)."""
    path = Path(handle)
    if not path.is_dir():
        return handle
    parts = [str(path.resolve())]
    for name in ("saved_model.pb", "variables/variables.index"):
        if (path / name).exists():
            st = (path / name).stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def canonical_handle(handle: str) -> str:
    """A local module's absolute path, a remote handle as it is: a module named by a
    relative and by an absolute path (the runner and its jobs, which get absolute paths
    to run anywhere) is one module with one cache."""
    path = Path(handle)
    return str(path.resolve()) if path.is_dir() else handle


def _check_feature_dim(handle: str, outputs: tf.Tensor) -> None:
    """A feature-vector module must output what its metadata says: the proxies and the
    fine-tuning head are sized from the real output, so a wrong ``feature_dim`` in
    ``expert_info.json`` would otherwise go unnoticed."""
    info = hub_loader.read_info(handle)
    if not info or "feature_vector" not in info.get("output", {}) or "feature_dim" not in info:
        return
    if outputs.shape[-1] != info["feature_dim"]:
        path = Path(hub_loader.resolve(handle)) / hub_loader.INFO_FILE
        raise ValueError(
            f"{path}: feature_dim is {info['feature_dim']}, but the module outputs "
            f"{outputs.shape[-1]} features"
        )


def first_call(handle: str, image_size: int, call):
    """``call()``, a module's first call on ``image_size`` images; a module that does not
    take that size (many published ones take 224x224 only: a SavedModel keeps the
    input shapes it was traced with) fails in one line naming it, the size it was given
    and the sizes it takes, instead of in TensorFlow's "in user code" traceback."""
    try:
        return call()
    except (TypeError, ValueError) as e:
        message = str(e)
        if "in user code" not in message and "concrete function" not in message:
            raise
        taken = sorted(set(re.findall(r"TensorSpec\(shape=(\([^)]*\))", message)))
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        why = f"it takes shapes {', '.join(taken)}" if taken else lines[-1][:200]
        raise ValueError(
            f"module {handle} fails on {image_size}x{image_size} images ({why}); set "
            "--config.image_size to a size it takes, or leave it out of --config.pool"
        ) from None


def read_cache(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """A feature cache file, checked. Writes are atomic (``files.write_npz``), so a
    killed run leaves no half-written cache: a bad one was damaged afterwards, and is
    named rather than silently replaced, so the damage is seen."""
    try:
        with np.load(path) as data:
            outputs, labels, seconds = data["outputs"], data["labels"], float(data["seconds"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise ValueError(
            f"{path}: not a readable feature cache ({reason}); delete it to recompute it"
        ) from None
    if outputs.ndim != 2 or labels.shape != (len(outputs),) or not np.isfinite(outputs).all():
        raise ValueError(
            f"{path}: not a feature cache (outputs {outputs.shape}, labels {labels.shape}, or "
            "non-finite outputs); delete it to recompute it"
        )
    return outputs, labels, seconds


class FeatureStore:
    """Embeds task splits with hub modules; caches images per task and outputs on disk.

    `outputs(handle, task, split)` returns `(outputs [n, dim] float32, labels [n], seconds)`
    where `seconds` is what the forward pass cost when it was computed (read back from
    the cache), so that selection costs stay comparable between fresh and resumed runs.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        image_size: int,
        batch_size: int = 256,
        image_cache_bytes: int = 1 << 30,
        precision: str = "float32",
    ):
        self.cache_dir = Path(cache_dir)
        self.precision = precision_lib.check(precision, "selection.precision")
        if precision != "float32" and not precision_lib.effective(precision):
            logging.warning(
                "precision %s: TensorFlow's rewrite has no effect on this machine "
                "(fanout/precision.py); modules run in float32",
                precision,
            )
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        # Decoded splits, least recently used dropped beyond this many bytes (the last
        # one always stays): the embedded suite's 48 splits take about 200 MB at 32 px.
        self.image_cache_bytes = int(image_cache_bytes)
        self._images: collections.OrderedDict = collections.OrderedDict()
        self._image_bytes = 0
        self._modules: collections.OrderedDict = collections.OrderedDict()
        # Seconds of forward passes run by this store (not read from the cache), and of
        # module loading: selectors subtract both from their wall time to time scoring.
        self.compute_seconds = 0.0
        self.load_seconds = 0.0

    def images(self, task, split: str) -> tuple[np.ndarray, np.ndarray]:
        key = (task.key, split)
        if key not in self._images:
            images, labels = self._images[key] = load_images(task, split, self.image_size)
            self._image_bytes += images.nbytes + labels.nbytes
            while self._image_bytes > self.image_cache_bytes and len(self._images) > 1:
                _, (old_images, old_labels) = self._images.popitem(last=False)
                self._image_bytes -= old_images.nbytes + old_labels.nbytes
        self._images.move_to_end(key)
        return self._images[key]

    def cache_path(self, handle: str, task, split: str) -> Path:
        parts = [CACHE_VERSION, fingerprint(handle), task.key, split, self.image_size]
        if self.precision != "float32":  # float32 keys stay those written before the option
            parts.append(self.precision)
        key = json.dumps(parts, sort_keys=True)
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]
        name = f"{split}-{self.image_size}px-{digest}.npz"
        module_dir = files.slug(canonical_handle(handle))
        return self.cache_dir / module_dir / files.slug(task.key) / name

    def _module(self, handle: str):
        """(hub layer, forward function on uint8 `[batch_size, size, size, 3]`)."""
        # Loading is not counted in the forward-pass seconds: a pool's modules are loaded
        # once and serve every task, so its cost is amortised (paper, section 6.6).
        if handle not in self._modules:
            start = time.perf_counter()
            layer = hub_loader.load(handle, trainable=False)
            shape = [self.batch_size, self.image_size, self.image_size, 3]
            # One batch shape: one trace, and one graph for the runtime to optimise (eager
            # calls of the restored module paid a second start-up on new batch shapes).
            forward = tf.function(
                lambda images: layer(to_float(images), training=False),
                input_signature=[tf.TensorSpec(shape, tf.uint8)],
            )
            # Tracing and the first call (where the runtime optimises the graph, seconds
            # for a ResNet) are loading, not the forward pass of whichever task is first.
            with precision_lib.rewrite(self.precision):
                outputs = first_call(
                    handle, self.image_size, lambda: forward(tf.zeros(shape, tf.uint8))
                )
            _check_feature_dim(handle, outputs)
            self._modules[handle] = (layer, forward)
            self.load_seconds += time.perf_counter() - start
            while len(self._modules) > 2:
                self._modules.popitem(last=False)
        self._modules.move_to_end(handle)
        return self._modules[handle]

    def _layer(self, handle: str):
        return self._module(handle)[0]

    def embed(self, handle: str, images: np.ndarray) -> np.ndarray:
        """Outputs of a module on uint8 `[n, image_size, image_size, 3]` images, in
        batches (no caching), as float32."""
        _, forward = self._module(handle)
        start = time.perf_counter()
        outputs = []
        with precision_lib.rewrite(self.precision):
            for i in range(0, len(images), self.batch_size):
                batch = images[i : i + self.batch_size]
                if len(batch) < self.batch_size:  # Padded: outputs are per image.
                    pad = np.zeros((self.batch_size - len(batch), *batch.shape[1:]), batch.dtype)
                    outputs.append(forward(tf.constant(np.concatenate([batch, pad])))[: len(batch)])
                else:
                    outputs.append(forward(tf.constant(batch)))
            outputs = [o.numpy() for o in outputs]
        self.compute_seconds += time.perf_counter() - start
        out = np.concatenate(outputs).astype(np.float32)
        if out.ndim != 2 or out.shape[0] != len(images):
            raise ValueError(f"module {handle}: expected [batch, dim] outputs, got {out.shape}")
        return out

    def outputs(self, handle: str, task, split: str) -> tuple[np.ndarray, np.ndarray, float]:
        path = self.cache_path(handle, task, split)
        if path.exists():
            return read_cache(path)
        images, labels = self.images(task, split)
        before = self.compute_seconds
        out = self.embed(handle, images)
        seconds = self.compute_seconds - before
        if not np.all(np.isfinite(out)):
            raise ValueError(f"module {handle}: non-finite outputs on {task.spec} {split}")
        files.write_npz(path, outputs=out, labels=labels, seconds=np.float64(seconds))
        logging.info(
            "embedded %s %s with %s: %s in %.1fs", task.spec, split, handle, out.shape, seconds
        )
        return out, labels, seconds

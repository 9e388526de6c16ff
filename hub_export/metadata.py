"""``expert_info.json`` and the ``README.md`` model card written beside each module.

``expert_info.json`` (schema version 1) holds, for every module:

* ``schema_version``, ``name`` (the directory name), ``kind`` (baseline | full |
  adapter | packed | classifier | epn), ``handle`` (the path under the hub root, the
  same as the tfhub.dev URL path), ``publisher``, ``collection``, ``version``;
* ``node``: the hierarchy node the expert was trained on (null for modules that are
  not one expert), and its ``description``;
* ``arch`` (a ResNet-v2 size), ``feature_dim``;
* ``upstream``: the dataset (tfds name), its number of labels and train images, and
  ``slice_images``, the train images of this module's slice;
* ``images_seen``: upstream images this module's weights were trained on, warm start
  included (B's steps x batch, plus the job's own); ``training`` has the job's
  ``steps``, ``global_batch`` and evaluation metrics;
* ``label_distribution`` (experts and B only): ``{label: probability}`` over the
  upstream labels with images in the slice, the empirical train distribution that
  label matching compares with a task's predicted labels (zeros left out);
* ``input``: ``{"range": [0, 1], "dtype": "float32", "layout": "NHWC", "size":
  <training resolution>, "any_size": true}``; ``output``: what ``__call__`` returns
  (``feature_vector`` with its dim, or ``logits`` with their ``labels`` in order);
* ``provenance``: work directory and checkpoint, export time, git commit, versions.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

from fanout import expert_info
from hub_export import tree

# The schema every expert_info.json is checked against before it is written: one copy
# (fanout/expert_info.py), shared with the pool that reads it downstream.
SCHEMA_VERSION = expert_info.SCHEMA_VERSION
FIELDS = expert_info.FIELDS


class SchemaError(ValueError):
    """An expert_info that does not fit the schema."""


def check_schema(info: Mapping) -> None:
    """Raises ``SchemaError`` for a field outside ``FIELDS`` or of another type, and
    for a label distribution that is not one of probabilities."""
    for field, value in info.items():
        if field not in FIELDS:
            raise SchemaError(f"expert_info field {field!r} is not in the schema")
        if not isinstance(value, FIELDS[field]):
            raise SchemaError(f"expert_info field {field!r} is a {type(value).__name__}")
    for label, p in info.get("label_distribution", {}).items():
        # A NaN passes every comparison as false; label matching would rank it anywhere.
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise SchemaError(
                f"field label_distribution holds {p!r} for label {label!r}, not a probability "
                "(does the module's slice have training images?)"
            )


def label_distribution(labels: Sequence[str], prior: np.ndarray) -> dict[str, float]:
    """The nonzero entries of a distribution over ``labels``, as plain floats."""
    if len(labels) != len(prior):
        raise ValueError(f"{len(labels)} labels but a distribution over {len(prior)}")
    return {label: float(p) for label, p in zip(labels, prior, strict=True) if p > 0}


@functools.cache
def git_commit(where: str | os.PathLike) -> str | None:
    """The checkout's HEAD commit, with "+dirty" when tracked files have local changes;
    None outside git. Read-only: --no-optional-locks keeps `status` off the index."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "HEAD") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(workdir: str | os.PathLike, checkpoint: str) -> dict:
    return {
        "workdir": str(Path(workdir).resolve()),
        "checkpoint": str(Path(checkpoint).resolve()),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(Path(__file__).parent),
        "tensorflow": tf.__version__,
        "tensorflow_hub": hub.__version__,
    }


def expert_info(
    handle: tree.Handle,
    *,
    node: str | None,
    description: str | None,
    feature_dim: int,
    upstream: Mapping,
    images_seen: int,
    training: Mapping,
    image_size: int,
    output: Mapping,
    provenance: Mapping,
    label_distribution: Mapping[str, float] | None = None,
    **extra,
) -> dict:
    info = {
        "schema_version": SCHEMA_VERSION,
        "name": handle.name,
        "kind": handle.kind,
        "handle": handle.relpath,
        "publisher": handle.publisher,
        "collection": handle.collection,
        "version": handle.version,
        "node": node,
        "description": description,
        "arch": handle.arch,
        "feature_dim": int(feature_dim),
        "upstream": dict(upstream),
        "images_seen": int(images_seen),
        "training": dict(training),
        "input": {
            "range": [0.0, 1.0],
            "dtype": "float32",
            "layout": "NHWC",
            "size": [int(image_size), int(image_size)],
            "any_size": True,
        },
        "output": dict(output),
        **extra,
        "provenance": dict(provenance),
    }
    if label_distribution is not None:
        info["label_distribution"] = dict(label_distribution)
    check_schema(info)
    return info


def write_info(directory: Path, info: Mapping) -> None:
    (directory / tree.INFO_FILE).write_text(json.dumps(info, indent=1, sort_keys=False) + "\n")


_TITLES = {
    "baseline": "the baseline B (all upstream data)",
    "full": "a full expert",
    "adapter": "an adapter expert",
    "packed": "every adapter expert, packed in one module",
    "classifier": "the upstream classifier (B with its head)",
    "epn": "the expert prediction network",
}


def _usage(info: Mapping) -> str:
    kind, handle = info["kind"], info["handle"]
    size = info["input"]["size"][0]
    if kind in tree.feature_vector_kinds():
        return f"""```python
import tensorflow_hub as hub
import tf_keras as keras

m = keras.Sequential([
    hub.KerasLayer("<hub_root>/{handle}", trainable=True),
    keras.layers.Dense(num_classes, kernel_initializer="zeros"),
])
m.build([None, {size}, {size}, 3])  # any size; float32 images in [0, 1]
```

`vtab_eval.pool.hub_loader.load("https://tfhub.dev/{handle}")` loads it too, from the
local mirror named by `$EXPERTS_HUB_ROOT`.

The module returns a `[batch, {info["feature_dim"]}]` feature vector. For fine-tuning, as in
the paper, train the whole network and a new zero-initialised head (SGD, momentum 0.9)."""
    if kind == "packed":
        return f"""```python
layer = hub.KerasLayer("<hub_root>/{handle}", arguments={{"expert": 3}})  # one expert
every = hub.load("<hub_root>/{handle}").all_experts(images)  # [batch, experts, {info["feature_dim"]}]
```"""
    return f"""```python
logits = hub.KerasLayer("<hub_root>/{handle}")(images)  # [batch, {len(info["output"]["labels"])}] sigmoid logits
```

Output order is `output.labels` in `expert_info.json`."""


def model_card(info: Mapping) -> str:
    """A tfhub.dev-style page: overview, usage, training data, provenance."""
    kind, up = info["kind"], info["upstream"]
    lines = [
        f"# Module {info['handle']}",
        "",
        f"BiT ResNet-v2 {info['arch']}: {_TITLES[kind]}"
        + (f" for `{info['node']}`" if info["node"] else "")
        + f", trained on `{up['dataset']}`.",
        "",
        "## Overview",
        "",
        "Big Transfer (BiT) ResNet-v2 with weight-standardised convolutions and GroupNorm, "
        "from *Scalable Transfer Learning with Expert Models* (Puigcerver et al., 2020).",
    ]
    lines += _what_it_is(info)
    lines += [
        "",
        "## Usage",
        "",
        _usage(info),
        "",
        "Inputs: float32 images `[batch, height, width, 3]` with values in [0, 1], any size "
        f"(trained at {info['input']['size'][0]}x{info['input']['size'][1]}); the module "
        "maps them to [-1, 1] itself.",
        "",
        "## Training data",
        "",
        f"- Upstream: `{up['dataset']}`, {up['num_labels']:,} labels, "
        f"{up['train_images']:,} train images.",
        f"- This module's slice: {up['slice_images']:,} train images.",
        f"- Images seen in training, warm start included: {info['images_seen']:,}.",
    ]
    lines += _evaluation(info)
    prov = info["provenance"]
    lines += [
        "",
        "## Provenance",
        "",
        f"- Checkpoint: `{prov['checkpoint']}`",
        f"- Exported {prov['exported_at']} from commit `{prov['git_commit']}` with "
        f"TensorFlow {prov['tensorflow']}.",
        "- Metadata: `expert_info.json` beside this file.",
        "",
        "## References",
        "",
        "- J. Puigcerver et al. Scalable Transfer Learning with Expert Models. ICLR 2021.",
        "- A. Kolesnikov et al. Big Transfer (BiT): General Visual Representation Learning. "
        "ECCV 2020.",
        "",
    ]
    return "\n".join(lines)


def _what_it_is(info: Mapping) -> list[str]:
    """The kind's own sentence of the overview."""
    kind, lines = info["kind"], []
    if kind == "full":
        lines.append(
            "This full expert is the baseline B fine-tuned, whole, on the upstream images "
            f"under hierarchy node `{info['node']}` ({info['description'] or 'no description'})."
        )
    elif kind == "adapter":
        lines.append(
            "This adapter expert is the frozen baseline B with the residual adapters trained "
            f"for hierarchy node `{info['node']}` built in; it has the same interface as a "
            "full expert."
        )
    elif kind == "packed":
        lines.append(f"Experts, in index order: {', '.join(info['experts'])}.")
    return lines


def _evaluation(info: Mapping) -> list[str]:
    metrics = info["training"].get("metrics", {})
    if metrics:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
        return [f"- Upstream evaluation: {shown}."]
    return []


def write_card(directory: Path, info: Mapping) -> None:
    (directory / tree.CARD_FILE).write_text(model_card(info))

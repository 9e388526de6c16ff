r"""Feature-extraction throughput: an exported module against the bare tf_keras model.

    python -m hub_export.benchmark --size=r26x0.25 --image_size=32 --batch=256
    python -m hub_export.benchmark --module=runs/demo/hub/local/experts/bit/...

Both sides embed the same in-memory batches with ``training=False``: the bare side is
``model(images)["pre_logits"]`` under ``tf.function`` (how a feature extractor runs the
Keras model), the hub side is ``hub.KerasLayer(module)`` under ``tf.function`` (how
``vtab_eval`` runs it). Without ``--module`` a freshly initialised model of ``--size``
is exported to a temporary directory; with one, the bare model is a fresh model of the
module's arch, with one adapter set for an adapter expert (weights do not change
the cost). Rounds alternate between the two sides
and the median is reported, so machine load hits both alike. Target: ratio >= 0.9.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import tensorflow as tf
import tensorflow_hub as hub
from absl import app, flags

from experts.models import resnet_v2
from hub_export import modules, tree

_SIZE = flags.DEFINE_string("size", "r26x0.25", "ResNet-v2 size (ignored with --module).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32, "Input height and width.")
_BATCH = flags.DEFINE_integer("batch", 256, "Images per batch.")
_BATCHES = flags.DEFINE_integer("batches", 10, "Batches per timed round.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds per side (alternating).")
_MODULE = flags.DEFINE_string("module", None, "An exported feature-vector module directory.")


def throughput(fn, images: tf.Tensor, batches: int) -> float:
    start = time.perf_counter()
    for _ in range(batches):
        out = fn(images)
    out.numpy()  # wait for the last batch
    return batches * int(images.shape[0]) / (time.perf_counter() - start)


def compare(model: resnet_v2.ResNetV2, module_dir: str, images, batches: int, rounds: int):
    """(bare images/s, hub images/s): medians over alternating rounds. ``model`` has the
    module's architecture: a one-expert adapter model for an adapter expert."""
    expert = 0 if model.num_experts else None
    bare = tf.function(lambda x: model(x, expert=expert, training=False)["pre_logits"])
    layer = hub.KerasLayer(module_dir)
    via_hub = tf.function(lambda x: layer(x, training=False))
    for fn in (bare, via_hub):  # trace and warm up
        throughput(fn, images, 2)
    results = {"bare": [], "hub": []}
    for _ in range(rounds):
        results["bare"].append(throughput(bare, images, batches))
        results["hub"].append(throughput(via_hub, images, batches))
    return statistics.median(results["bare"]), statistics.median(results["hub"])


def main(argv):
    del argv
    size = _SIZE.value
    with tempfile.TemporaryDirectory() as tmp:
        module_dir = _MODULE.value
        num_experts = 0
        if module_dir:
            info = json.loads((Path(module_dir) / tree.INFO_FILE).read_text())
            if info["kind"] not in tree.FEATURE_VECTOR_KINDS:
                raise app.UsageError(f"--module: a {info['kind']} module is not one expert")
            size, num_experts = info["arch"], int(info["kind"] == "adapter")
        model = resnet_v2.ResNetV2(size, 0, num_experts).build_for(_IMAGE_SIZE.value)
        if not module_dir:
            module_dir = str(Path(tmp) / "module")
            start = time.perf_counter()
            modules.save(modules.resnet_feature_vector(model), module_dir)
            print(f"exported a fresh {size} in {time.perf_counter() - start:.1f}s")
        shape = [_BATCH.value, _IMAGE_SIZE.value, _IMAGE_SIZE.value, 3]
        images = tf.random.stateless_uniform(shape, seed=[0, 1])
        bare, via_hub = compare(model, module_dir, images, _BATCHES.value, _ROUNDS.value)
    print(f"{size} at {_IMAGE_SIZE.value}px, batch {_BATCH.value}, feature extraction:")
    print(f"  bare tf_keras model: {bare:,.0f} img/s")
    print(f"  hub.KerasLayer:      {via_hub:,.0f} img/s")
    print(f"  ratio hub / bare:    {via_hub / bare:.3f} (target >= 0.9)")


if __name__ == "__main__":
    app.run(main)

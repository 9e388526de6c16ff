r"""Downstream steps on the devices at hand: images/s per device of the fine-tuning step
and of hub feature extraction, on one exported module (prints a table).

    python -m hub_export.accelerator_benchmark --preset=paper            # r50x1, 224 px
    python -m hub_export.accelerator_benchmark --preset=paper --strategy=tpu --tpu_address=...
    python -m hub_export.accelerator_benchmark --preset=smoke --steps=4   # any machine

``make bench-accelerator`` runs it after ``experts.training.accelerator_benchmark`` (the
upstream train steps), whose table has the same columns. The module is a freshly
initialised model of the preset's baseline architecture and resolution (``--size``,
``--image_size`` override them) exported to a temporary directory: weights do not
change the cost.

* Fine-tuning step: ``vtab_eval.finetune.FineTuner``, the protocol's own code, under
  ``--strategy`` (default: the transfer preset's, ``auto`` for ``paper``) at the preset's
  fine-tuning batch (512 for ``paper``; ``--batch``), on ``--train_images`` synthetic
  images. A short run first, then one of ``--steps`` steps timed as ``run`` times it:
  one call for every step, the training set copied to each replica once.
* Feature extraction: ``hub.KerasLayer`` under ``tf.function`` at the preset's
  embedding batch, on one device, as ``vtab_eval`` embeds tasks
  (``hub_export.benchmark``'s measurement: the median of alternating rounds).

Images/s per device divides by the replicas that did the work. Precision is float32.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from experts import cli
from experts.configs import baseline
from experts.models import resnet_v2
from experts.training import accelerator_benchmark as upstream
from fanout import distribute
from hub_export import benchmark, modules
from vtab_eval import precision as precision_lib
from vtab_eval.configs import transfer
from vtab_eval.finetune import FineTuner
from vtab_eval.hyperparams import HParams

NUM_CLASSES = 10  # the head's outputs; a few columns more or less do not change the cost


def export_fresh(size: str, image_size: int, directory: Path) -> tuple[resnet_v2.ResNetV2, str]:
    """A fresh model of ``size`` and its hub module in ``directory``."""
    model = resnet_v2.ResNetV2(size, 0).build_for(image_size)
    module_dir = str(directory / "module")
    modules.save(modules.resnet_feature_vector(model), module_dir)
    return model, module_dir


def measure_finetuning(module_dir: str, model_name: str, image_size: int, batch: int,
                       steps: int, train_images: int, strategy,
                       precision: str = "float32") -> dict:  # fmt: skip
    """Images/s of ``FineTuner``'s training step, in all and per device, in
    ``precision``'s graph rewrite (as ``Tuning`` runs it)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (train_images, image_size, image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, train_images).astype(np.int64)
    tuner = FineTuner(module_dir, NUM_CLASSES, image_size, eval_batch=batch, strategy=strategy)
    evaluate = (images[:batch], labels[:batch])  # not timed: run() times training alone

    def setting(length: int) -> HParams:
        return HParams(0.01, length, batch, warmup_steps=0, decay_boundaries=())

    with precision_lib.rewrite(precision):
        tuner.run((images, labels), evaluate, setting(2), seed=0)  # first run on real shapes
        result = tuner.run((images, labels), evaluate, setting(steps), seed=1)
    per_second = steps * batch / result["train_seconds"]
    replicas = strategy.num_replicas_in_sync
    return _row("fine-tuning step", model_name, batch, replicas, per_second, precision)


def measure_features(model, module_dir: str, model_name: str, image_size: int, batch: int,
                     batches: int, rounds: int, precision: str = "float32") -> dict:  # fmt: skip
    """Images/s of feature extraction through the hub module, on one device."""
    images = tf.random.stateless_uniform([batch, image_size, image_size, 3], seed=[0, 1])
    _, via_hub = benchmark.compare(model, module_dir, images, batches, rounds, precision)
    return _row("hub feature extraction", model_name, batch, 1, via_hub, precision)


def _row(job, model: str, batch: int, replicas: int, per_second: float, precision) -> dict:
    return {
        "job": job,
        "model": model,
        # Hub modules are float32 graphs: a reduced precision is TensorFlow's rewrite,
        # which it skips on machines without the hardware for it (vtab_eval/precision.py).
        "precision": precision if precision_lib.effective(precision) else "float32",
        "global_batch": batch,
        "replicas": replicas,
        "images_per_second": per_second,
        "per_device": per_second / replicas,
    }


def measure(
    preset: str,
    strategy,
    steps: int,
    *,
    size: str | None = None,
    image_size: int | None = None,
    batch: int | None = None,
    train_images: int = 1000,
    feature_batches: int = 10,
    rounds: int = 3,
    precision: str = "float32",
) -> list[dict]:
    """Both rows, for a module of the preset's baseline architecture and resolution and
    at its fine-tuning and embedding batches, unless given."""
    model_config = baseline.get_config(preset).model
    size, image_size = size or model_config.size, image_size or model_config.image_size
    config = transfer.get_config(preset)
    name = f"{size} at {image_size}px"
    with tempfile.TemporaryDirectory() as tmp:
        model, module_dir = export_fresh(size, image_size, Path(tmp))
        finetuning = measure_finetuning(
            module_dir, name, image_size, batch or config.finetune.batch_size, steps,
            train_images, strategy, precision,
        )  # fmt: skip
        features = measure_features(
            model, module_dir, name, image_size, config.selection.batch_size,
            feature_batches, rounds, precision,
        )  # fmt: skip
    return [finetuning, features]


def define_flags() -> None:
    flags.DEFINE_enum("preset", "paper", ["smoke", "cpu", "paper"], "The configs' preset.")
    flags.DEFINE_string("strategy", None, "tf.distribute strategy; default: the preset's.")
    flags.DEFINE_string("tpu_address", "", "TPU name or address (strategy tpu or auto).")
    flags.DEFINE_string("size", None, "ResNet-v2 size; default: the preset's baseline.")
    flags.DEFINE_integer("image_size", None, "Input size; default: the preset's baseline.")
    flags.DEFINE_integer("batch", None, "Fine-tuning batch; default: the preset's.")
    flags.DEFINE_integer("steps", 100, "Timed fine-tuning steps.")
    flags.DEFINE_integer("train_images", 1000, "Training set size (VTAB-1k: 1000).")
    flags.DEFINE_integer("feature_batches", 10, "Feature-extraction batches per round.")
    flags.DEFINE_integer("rounds", 3, "Feature-extraction rounds (the median is kept).")
    flags.DEFINE_enum(
        "precision", "float32", ["float32", "bfloat16"],
        "Both rows' precision: TensorFlow's mixed-precision rewrite (as fine-tuning takes it).",
    )  # fmt: skip


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    if not f["verbosity"].present:  # the export's INFO lines would bury the table
        logging.set_verbosity(logging.WARNING)
    with cli.user_errors("hub_export.accelerator_benchmark"):
        name = f.strategy or transfer.get_config(f.preset).strategy
        strategy = distribute.make_strategy(name, f.tpu_address)
        rows = measure(
            f.preset, strategy, f.steps, size=f.size, image_size=f.image_size, batch=f.batch,
            train_images=f.train_images, feature_batches=f.feature_batches, rounds=f.rounds,
            precision=f.precision,
        )  # fmt: skip
    skipped = f" ({f.precision} asked: TensorFlow skips that rewrite here)"
    skipped = skipped if rows[0]["precision"] != f.precision else ""
    print(
        f"\ndownstream steps: strategy {name} for fine-tuning (feature extraction on one "
        f"device), {rows[0]['precision']}{skipped}, {f.steps} timed fine-tuning steps\n\n"
        f"{upstream.table(rows)}"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.flags_parser("hub_export.accelerator_benchmark"))

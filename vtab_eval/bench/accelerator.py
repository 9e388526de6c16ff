r"""Downstream steps on the devices at hand: images/s per device of the fine-tuning step
and of hub feature extraction, on one hub module (prints a table).

    python -m vtab_eval.bench.accelerator --preset=paper --module=runs/bench/accelerator_module
    python -m vtab_eval.bench.accelerator --preset=paper --strategy=tpu --tpu_address=... --module=...
    python -m vtab_eval.bench.accelerator --preset=smoke --steps=4 --module=...   # any machine

``--module`` is any handle ``hub_loader`` loads: a published expert, or the fresh model
of the preset's baseline size that ``hub_export.bench.accelerator_module`` exports
(weights do not change the cost). ``make bench-accelerator`` runs that export and then
this, after ``experts.bench.accelerator`` (the upstream train steps), whose table has
the same columns. The model column and the image size come from the module's
``expert_info.json`` (``--image_size`` overrides it); a module without one runs at the
transfer preset's image size and is named by its handle.

* Fine-tuning step: ``vtab_eval.finetune.tuner.FineTuner``, the protocol's own code, under
  ``--strategy`` (default: the transfer preset's, ``auto`` for ``paper``) at the preset's
  fine-tuning batch (512 for ``paper``; ``--batch``), on ``--train_images`` synthetic
  images. A short run first, then one of ``--steps`` steps timed as ``run`` times it:
  one call for every step, the training set copied to each replica once.
* Feature extraction: ``hub.KerasLayer`` under ``tf.function`` at the preset's
  embedding batch, on one device, as ``vtab_eval`` embeds tasks: the median of
  ``--rounds`` rounds of ``--feature_batches`` batches.

Images/s per device divides by the replicas that did the work. Both rows run in
``--precision`` (TensorFlow's mixed-precision rewrite, ``fanout.precision``).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from fanout import cli, distribute
from fanout import precision as precision_lib
from fanout.bench.accelerator_table import table
from vtab_eval.configs import transfer
from vtab_eval.finetune.hyperparams import HParams
from vtab_eval.finetune.tuner import FineTuner
from vtab_eval.pool import hub_loader

PROGRAM = "vtab_eval.bench.accelerator"
NUM_CLASSES = 10  # the head's outputs; a few columns more or less do not change the cost


def describe(handle: str, image_size: int | None, preset: str) -> tuple[str, int]:
    """(the model column, the image size) of ``handle``: from its info file if it has
    one, else its handle and the transfer preset's image size; ``image_size`` wins."""
    info = hub_loader.read_info(handle) or {}
    size = image_size or (info.get("input", {}).get("size") or [None])[0]
    size = size or transfer.get_config(preset).image_size
    return f"{info.get('arch', handle)} at {size}px", int(size)


def measure_finetuning(handle: str, model_name: str, image_size: int, batch: int,
                       steps: int, train_images: int, strategy,
                       precision: str = "float32") -> dict:  # fmt: skip
    """Images/s of ``FineTuner``'s training step, in all and per device, in
    ``precision``'s graph rewrite (as ``Tuning`` runs it)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (train_images, image_size, image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, train_images).astype(np.int64)
    tuner = FineTuner(handle, NUM_CLASSES, image_size, eval_batch=batch, strategy=strategy)
    evaluate = (images[:batch], labels[:batch])  # not timed: run() times training alone

    def setting(length: int) -> HParams:
        return HParams(0.01, length, batch, warmup_steps=0, decay_boundaries=())

    with precision_lib.rewrite(precision):
        tuner.run((images, labels), evaluate, setting(2), seed=0)  # first run on real shapes
        result = tuner.run((images, labels), evaluate, setting(steps), seed=1)
    per_second = steps * batch / result["train_seconds"]
    replicas = strategy.num_replicas_in_sync
    return _row("fine-tuning step", model_name, batch, replicas, per_second, precision)


def measure_features(handle: str, model_name: str, image_size: int, batch: int,
                     batches: int, rounds: int, precision: str = "float32") -> dict:  # fmt: skip
    """Images/s of feature extraction through the hub module, on one device: the median
    of ``rounds`` rounds after two warm-up batches."""
    images = tf.random.stateless_uniform([batch, image_size, image_size, 3], seed=[0, 1])
    layer = hub_loader.load(handle)  # checked, as every load
    embed = tf.function(lambda x: layer(x, training=False))

    def throughput(count: int) -> float:
        with precision_lib.rewrite(precision):
            start = time.perf_counter()
            for _ in range(count):
                out = embed(images)
            out.numpy()  # wait for the last batch
        return count * batch / (time.perf_counter() - start)

    throughput(2)  # trace and warm up
    per_second = statistics.median(throughput(batches) for _ in range(rounds))
    return _row("hub feature extraction", model_name, batch, 1, per_second, precision)


def _row(job, model: str, batch: int, replicas: int, per_second: float, precision) -> dict:
    return {
        "job": job,
        "model": model,
        # Hub modules are float32 graphs: a reduced precision is TensorFlow's rewrite,
        # which it skips on machines without the hardware for it (fanout/precision.py).
        "precision": precision if precision_lib.effective(precision) else "float32",
        "global_batch": batch,
        "replicas": replicas,
        "images_per_second": per_second,
        "per_device": per_second / replicas,
    }


def measure(
    handle: str,
    preset: str,
    strategy,
    steps: int,
    *,
    image_size: int | None = None,
    batch: int | None = None,
    train_images: int = 1000,
    feature_batches: int = 10,
    rounds: int = 3,
    precision: str = "float32",
) -> list[dict]:
    """Both rows for ``handle``, at the transfer preset's fine-tuning and embedding
    batches unless given."""
    name, image_size = describe(handle, image_size, preset)
    config = transfer.get_config(preset)
    finetuning = measure_finetuning(
        handle, name, image_size, batch or config.finetune.batch_size, steps,
        train_images, strategy, precision,
    )  # fmt: skip
    features = measure_features(
        handle, name, image_size, config.selection.batch_size, feature_batches, rounds,
        precision,
    )  # fmt: skip
    return [finetuning, features]


def define_flags() -> None:
    flags.DEFINE_string("module", None, "The hub module: a handle or a directory.")
    flags.DEFINE_enum("preset", "paper", ["smoke", "cpu", "paper"], "The configs' preset.")
    flags.DEFINE_string("strategy", None, "tf.distribute strategy; default: the preset's.")
    flags.DEFINE_string("tpu_address", "", "TPU name or address (strategy tpu or auto).")
    flags.DEFINE_integer("image_size", None, "Input size; default: the module's.")
    flags.DEFINE_integer("batch", None, "Fine-tuning batch; default: the preset's.")
    flags.DEFINE_integer("steps", 100, "Timed fine-tuning steps.")
    flags.DEFINE_integer("train_images", 1000, "Training set size (VTAB-1k: 1000).")
    flags.DEFINE_integer("feature_batches", 10, "Feature-extraction batches per round.")
    flags.DEFINE_integer("rounds", 3, "Feature-extraction rounds (the median is kept).")
    flags.DEFINE_enum(
        "precision", "float32", ["float32", "bfloat16"],
        "Both rows' precision: TensorFlow's mixed-precision rewrite (as fine-tuning takes it).",
    )  # fmt: skip
    flags.mark_flag_as_required("module")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    if not f["verbosity"].present:  # the loader's INFO lines would bury the table
        logging.set_verbosity(logging.WARNING)
    with cli.user_errors(PROGRAM, (hub_loader.HubLoadError,)):
        name = f.strategy or transfer.get_config(f.preset).strategy
        strategy = distribute.make_strategy(name, f.tpu_address)
        rows = measure(
            f.module, f.preset, strategy, f.steps, image_size=f.image_size, batch=f.batch,
            train_images=f.train_images, feature_batches=f.feature_batches, rounds=f.rounds,
            precision=f.precision,
        )  # fmt: skip
    skipped = f" ({f.precision} asked: TensorFlow skips that rewrite here)"
    skipped = skipped if rows[0]["precision"] != f.precision else ""
    print(
        f"\ndownstream steps: strategy {name} for fine-tuning (feature extraction on one "
        f"device), {rows[0]['precision']}{skipped}, {f.steps} timed fine-tuning steps\n\n"
        f"{table(rows)}"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.flags_parser(PROGRAM))

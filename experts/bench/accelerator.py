r"""Upstream train steps on the devices at hand: images/s per device for B's step, a
full expert's step and the adapter job's step (prints a table).

    python -m experts.bench.accelerator --preset=paper            # r50x1, 224 px
    python -m experts.bench.accelerator --preset=paper --strategy=tpu --tpu_address=...
    python -m experts.bench.accelerator --preset=smoke --steps=4   # any machine
    python -m experts.bench.accelerator --preset=paper --precision=float32

Each job runs through the trainer (``loop.train``) with its own preset's config (model,
global batch, steps per call, weight decay) under ``--strategy`` (default: the preset's,
``auto`` for ``paper``), on synthetic in-memory batches, so the figure is the step's and
not the input pipeline's. A full expert's step is B's model and loss on a slice, so the
two differ only by their configs. Images/s is the trainer's steady rate (between its
first and last log lines) divided by the replicas. Precision is ``--precision`` (default:
the preset's ``train.precision``, ``auto`` for ``paper``: bfloat16 on TPUs and recent
GPUs; experts/training/precision.py), resolved on this machine and shown in the table.
The downstream side's steps have their own benchmarks:
``vtab_eval.bench.accelerator`` (the fine-tuning step and feature extraction on the
devices at hand, on a module ``hub_export.bench.accelerator_module`` exports, in a
table of the same columns, which ``make bench-accelerator`` prints after this one),
``hub_export.bench.feature_extraction`` (hub against bare feature extraction) and
``vtab_eval.bench.finetune_step`` (FineTuner against a bare step).
"""

from __future__ import annotations

import tempfile

import tensorflow as tf
from absl import app, flags

from experts import jobs
from experts.bench import trainer_overhead
from experts.configs import adapter, baseline, full
from experts.training import distribute, loop
from experts.training import precision as precision_lib
from fanout import cli
from fanout.bench.accelerator_table import table

CONFIGS = {"baseline": baseline, "full": full, "adapter": adapter}


def synthetic_job(kind: str, config, nodes: int, experts: int) -> loop.Job:
    """The job's model, loss and trainable variables on random batches."""
    adapters = kind == "adapter"

    def build():
        model = jobs.sigmoid_model(config, nodes, num_experts=experts if adapters else 0)
        model.build_for(config.model.image_size)
        if adapters:
            model.freeze_backbone()
        return model

    def dataset_fn(ctx, batch, seed, start):
        ds = trainer_overhead.batches(batch, config.model.image_size, nodes)
        if adapters:  # every example routed to one of the experts, as expert_mix does
            ds = ds.map(lambda b: {**b, "expert": tf.random.uniform([batch], 0, experts, tf.int32)})
        return ds

    def per_example_loss(model, batch):
        routing = {"expert": batch["expert"]} if adapters else {}
        logits = model(batch["image"], training=True, **routing)["logits"]
        return jobs.sigmoid_loss(batch["targets"], logits)

    # The adapter job trains its adapters only; the others every weight (the default).
    only = {"trainable_variables": lambda model: model.adapter_variables} if adapters else {}
    return loop.Job(
        name=kind,
        build_model=build,
        dataset_fn=dataset_fn,
        per_example_loss=per_example_loss,
        **only,
    )


def measure(
    kind: str, preset: str, strategy, steps: int, nodes: int, experts: int, precision=None
) -> dict:
    """The job's global batch, replicas, precision and images/s in all and per device;
    ``precision`` overrides the preset's ``train.precision``."""
    config = CONFIGS[kind].get_config(preset)
    if precision:
        config.train.precision = precision
    train = config.train.copy_and_resolve_references()
    calls = max(1, train.steps_per_call)
    train.log_every = calls * max(1, steps // (2 * calls))  # at least two log lines
    train.total_steps = steps + train.log_every
    train.checkpoint_every = 10 * train.total_steps  # only the final save
    job = synthetic_job(kind, config, nodes, experts)
    with tempfile.TemporaryDirectory() as workdir:
        result = loop.train(job, train, workdir, strategy)
    replicas = strategy.num_replicas_in_sync
    return {
        "job": kind,
        "model": f"{config.model.size} at {config.model.image_size}px",
        "precision": precision_lib.of_config(train),
        "global_batch": train.global_batch,
        "replicas": replicas,
        "images_per_second": result["images_per_second"],
        "per_device": result["images_per_second"] / replicas,
    }


def define_flags() -> None:
    flags.DEFINE_enum("preset", "paper", ["smoke", "cpu", "paper"], "The job configs' preset.")
    flags.DEFINE_string("strategy", None, "tf.distribute strategy; default: the preset's.")
    flags.DEFINE_string("tpu_address", "", "TPU name or address (strategy tpu or auto).")
    flags.DEFINE_enum(
        "precision", None, list(precision_lib.PRECISIONS), "Default: the preset's train.precision."
    )
    flags.DEFINE_list("jobs", list(CONFIGS), "Jobs to measure.")
    flags.DEFINE_integer("steps", 200, "Timed steps per job.")
    flags.DEFINE_integer("nodes", 21_843, "Sigmoid outputs (ImageNet-21k's classes).")
    flags.DEFINE_integer("experts", 50, "Adapter experts (the paper's ImageNet-21k pool).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    with cli.user_errors("experts.bench.accelerator"):
        name = f.strategy or baseline.get_config(f.preset).strategy
        strategy = distribute.make_strategy(name, f.tpu_address)
        unknown = sorted(set(f.jobs) - set(CONFIGS))
        if unknown:
            raise ValueError(f"--jobs: unknown {unknown}; choose from {', '.join(CONFIGS)}")
        rows = [
            measure(kind, f.preset, strategy, f.steps, f.nodes, f.experts, f.precision)
            for kind in f.jobs
        ]
    precisions = ", ".join(sorted({r["precision"] for r in rows}))
    print(
        f"\nupstream train steps: strategy {name}, {precisions}, {f.steps} timed steps per job\n\n{table(rows)}"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.flags_parser("experts.bench.accelerator"))

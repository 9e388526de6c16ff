"""The four upstream jobs of the paper's Figure 1, as ``loop.Job``s.

* ``baseline``: B, BiT ResNet-v2 with a sigmoid head over every hierarchy node (labels
  plus ancestors), trained on the whole upstream.
* ``full``: B fine-tuned, head included, on one expert's slice.
* ``adapter``: B frozen; one adapter set per expert, all trained at once on a mix
  of the slices in equal shares, routed by the upstream labels.
* ``epn``: the expert prediction network: B's backbone with a new sigmoid head over the
  experts (slices overlap, so an image can belong to several). Starting from B rather
  than from scratch is our choice: it is the cheapest strong image model upstream has.

Losses follow BiT/big_vision: sigmoid cross-entropy summed over outputs, averaged over
the batch. Evaluation reports, on the validation split, the sigmoid loss, ``top1``
(the highest-scoring *label* is the image's label) and ``prec1`` (the highest-scoring
node of any kind is one of its positives); experts are measured on their own slice
next to B on the same slice.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from pathlib import Path

import ml_collections
import numpy as np
import tensorflow as tf

from experts import work_tree
from experts.data import augment as augmentation
from experts.data import pipelines, upstream
from experts.models import adapters, resnet_v2
from experts.training import loop, precision

JOBS = work_tree.JOBS
EVAL_SPLIT = "validation"
# Images whose stream RMS sets the adapters' output scales (model.adapter_scale).
SCALE_IMAGES = 256


@dataclasses.dataclass
class Upstream:
    """A prepared upstream dataset and the experts chosen on it."""

    builder: object
    info: upstream.UpstreamInfo
    experts: tuple[str, ...]
    image_size: int
    augment: augmentation.Augment = augmentation.GLYPHS

    @classmethod
    def open(cls, config: ml_collections.ConfigDict) -> Upstream:
        builder, info = pipelines.open_upstream(config.data.name, config.data_dir or None)
        names = tuple(config.data.experts)
        choice = config.data.choice
        if not names and choice.rule == "top":  # the job's own rule, not the build's
            rule = {k: v for k, v in choice.items() if k != "rule"}
            names = tuple(info.choose_experts(upstream.ExpertChoice(**rule)))
        experts = info.job_experts(names, config.data.get("num_experts", 0))
        augment = augmentation.Augment.from_config(config.data.augment)
        return cls(builder, info, experts, config.model.image_size, augment)

    # What every job of a run shares, kept for the run's lifetime (not the process's).
    _baselines: dict = dataclasses.field(default_factory=dict, repr=False)
    _logits_fns: weakref.WeakKeyDictionary = dataclasses.field(
        default_factory=weakref.WeakKeyDictionary, repr=False
    )

    def read(
        self, make, *selection, split: str, batch: int, training: bool, seed: int = 0, start=0
    ):
        """One of ``data.pipelines``' datasets over this upstream with its augmentation:
        ``make(builder, info, *selection, split, batch, image_size, training, seed,
        augment, start=start)``, ``selection`` being the expert or experts it takes."""
        return make(
            self.builder, self.info, *selection, split, batch, self.image_size, training, seed,
            self.augment, start=start,
        )  # fmt: skip

    @property
    def num_nodes(self) -> int:
        return len(self.info.hierarchy)

    def baseline(self, config) -> resnet_v2.ResNetV2:
        """B from its final checkpoint, loaded once (every expert compares with it);
        read-only for callers. A retrained B (newer metrics) is loaded again."""
        metrics = work_tree.JobDir(Path(config.baseline_workdir)).metrics_path
        key = (config.baseline_workdir, metrics.stat().st_mtime if metrics.exists() else 0)
        if key not in self._baselines:
            model = sigmoid_model(config, self.num_nodes)
            self._baselines[key] = restore(model, config.baseline_workdir)
        return self._baselines[key]

    def logits_fn(self, model):
        """The model's logits as one compiled function, ``(images[, expert]) -> logits``:
        eager calls cost several times more on a CPU, and taking the expert id as a
        tensor lets one trace serve every adapter expert. One function per model object,
        so a model reused across jobs (full experts) or B, evaluated next to each of
        them, is traced once."""
        if model not in self._logits_fns:

            @tf.function(reduce_retracing=True)
            def logits(images, expert=None):
                return model(images, **({} if expert is None else {"expert": expert}))["logits"]

            self._logits_fns[model] = logits
        return self._logits_fns[model]


def _sharded(ctx: tf.distribute.InputContext, ds: tf.data.Dataset) -> tf.data.Dataset:
    """One shard of the batches per input pipeline (one per worker). Every pipeline reads
    the one stream from the same start (a multiple of the global batch, so of every
    pipeline's batches), so the shards stay in step after a resume."""
    if ctx.num_input_pipelines > 1:
        ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
    return ds


def sigmoid_model(config, outputs: int, num_experts: int = 0) -> resnet_v2.ResNetV2:
    """A ResNetV2 with a sigmoid head whose bias starts at the log-prior -log(outputs),
    in the job's ``train.precision`` (B, when it is evaluated next to an expert, too);
    with adapter experts, a head bias per expert when ``model.expert_head_bias``, an
    output scale per adapter when ``model.adapter_scale`` and ``model.adapter_width``'s
    bottleneck."""
    return resnet_v2.ResNetV2(
        config.model.size, outputs, num_experts=num_experts, head_bias_init=-math.log(outputs),
        expert_head_bias=bool(num_experts and config.model.get("expert_head_bias", False)),
        adapter_scale=bool(num_experts and config.model.get("adapter_scale", False)),
        adapter_width=float(config.model.get("adapter_width", adapters.PAPER_WIDTH)),
        dtype=precision.of_config(config.train),
    )  # fmt: skip


def per_expert_weights(expert: tf.Tensor, num_experts: int) -> tf.Tensor:
    """Per-example loss weights under which each expert's examples in the batch are
    averaged among themselves: ``n / n_e`` for an example of expert e (n examples, n_e
    of them e's). Averaged over the batch, the loss is then the sum over the experts
    present of each one's mean loss, each with weight 1, as if it trained alone on its
    own examples; the batch average gives each its share n_e / n instead."""
    counts = tf.math.bincount(expert, minlength=num_experts, maxlength=num_experts)
    counts = tf.cast(counts, tf.float32)
    return tf.cast(tf.size(expert), tf.float32) / tf.gather(counts, expert)


def sigmoid_loss(targets, logits):
    return tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(targets, logits), axis=-1)


def restore(model: resnet_v2.ResNetV2, workdir: str) -> resnet_v2.ResNetV2:
    """Loads a finished job's model (same structure) from its final checkpoint."""
    job = work_tree.JobDir(Path(workdir))
    if not job.finished():
        raise FileNotFoundError(f"{workdir} has no finished run; train that job first")
    model.build_for()
    tf.train.Checkpoint(model=model).read(job.final_model).assert_consumed()
    return model


def multilabel_metrics(data: Upstream, predict, dataset, expert=None) -> dict[str, float]:
    """Validation loss, label top-1 and node precision@1 of a node-headed model, given
    its ``logits_fn`` (and the adapter expert to route through)."""
    label_nodes = np.array([data.info.hierarchy.node_index(label) for label in data.info.labels])
    total, loss, top1, prec1 = 0, 0.0, 0, 0
    expert = None if expert is None else tf.constant(expert, tf.int32)
    for batch in dataset:
        logits = predict(batch["image"], expert).numpy()
        targets = batch["targets"].numpy()
        loss += float(tf.reduce_sum(sigmoid_loss(targets, logits)))
        top1 += int(np.sum(np.argmax(logits[:, label_nodes], -1) == batch["label"].numpy()))
        prec1 += int(np.sum(targets[np.arange(len(logits)), np.argmax(logits, -1)] > 0))
        total += len(logits)
    return {
        "loss": loss / max(1, total),
        "top1": top1 / max(1, total),
        "prec1": prec1 / max(1, total),
        "images": total,
    }


def _eval_batch(config) -> int:
    return int(config.get("eval_batch", 256))


def baseline_job(config, data: Upstream) -> loop.Job:
    def dataset_fn(ctx, batch, seed, start):
        ds = data.read(
            pipelines.whole, split="train", batch=batch, training=True, seed=seed, start=start
        )
        return _sharded(ctx, ds)

    def evaluate(model):
        ds = data.read(pipelines.whole, split=EVAL_SPLIT, batch=_eval_batch(config), training=False)
        return multilabel_metrics(data, data.logits_fn(model), ds)

    return loop.Job(
        name="baseline",
        build_model=lambda: sigmoid_model(config, data.num_nodes).build_for(),
        dataset_fn=dataset_fn,
        per_example_loss=lambda m, b: sigmoid_loss(
            b["targets"], m(b["image"], training=True)["logits"]
        ),
        evaluate=evaluate,
    )


def full_expert_job(config, data: Upstream, expert: str) -> loop.Job:
    def slice_data(split, batch, training, seed=0, start=0):
        return data.read(
            pipelines.expert_slice, expert, split=split, batch=batch, training=training,
            seed=seed, start=start,
        )  # fmt: skip

    def evaluate(model):
        # Read once for both models: a slice is a small part of the validation split.
        ds = list(slice_data(EVAL_SPLIT, _eval_batch(config), False))
        expert_metrics = multilabel_metrics(data, data.logits_fn(model), ds)
        base = multilabel_metrics(data, data.logits_fn(data.baseline(config)), ds)
        return {**expert_metrics, **{f"baseline_{k}": v for k, v in base.items() if k != "images"}}

    return loop.Job(
        name=f"full/{expert}",
        build_model=lambda: sigmoid_model(config, data.num_nodes).build_for(),
        dataset_fn=lambda ctx, batch, seed, start: _sharded(
            ctx, slice_data("train", batch, True, seed, start)
        ),
        per_example_loss=lambda m, b: sigmoid_loss(
            b["targets"], m(b["image"], training=True)["logits"]
        ),
        warm_start=lambda model: restore(model, config.baseline_workdir),
        evaluate=evaluate,
        reuse_key="full",  # every expert is B's model, loss and variables
    )


def adapter_job(config, data: Upstream) -> loop.Job:
    experts = list(data.experts)

    def build_model():
        model = sigmoid_model(config, data.num_nodes, num_experts=len(experts))
        model.build_for()
        model.freeze_backbone()
        return model

    def dataset_fn(ctx, batch, seed, start):
        ds = data.read(
            pipelines.expert_mix, experts, split="train", batch=batch, training=True,
            seed=seed, start=start,
        )  # fmt: skip
        return _sharded(ctx, ds)

    def per_example_loss(model, batch):
        logits = model(batch["image"], expert=batch["expert"], training=True)["logits"]
        loss = sigmoid_loss(batch["targets"], logits)
        if config.train.get("expert_loss", "batch") == "per_expert":
            loss *= per_expert_weights(batch["expert"], len(experts))
        return loss

    def evaluate(model):
        routed, baseline = data.logits_fn(model), data.logits_fn(data.baseline(config))
        metrics = {}
        for e, name in enumerate(experts):
            ds = data.read(
                pipelines.expert_slice, name, split=EVAL_SPLIT, batch=_eval_batch(config),
                training=False,
            )  # fmt: skip
            ds = list(ds)  # read once for the adapter expert and B
            mine = multilabel_metrics(data, routed, ds, expert=e)
            base = multilabel_metrics(data, baseline, ds)
            metrics[f"{name}/top1"], metrics[f"{name}/baseline_top1"] = mine["top1"], base["top1"]
            metrics[f"{name}/loss"], metrics[f"{name}/baseline_loss"] = mine["loss"], base["loss"]
        return metrics

    return loop.Job(
        name="adapter",
        build_model=build_model,
        dataset_fn=dataset_fn,
        per_example_loss=per_example_loss,
        trainable_variables=lambda model: model.expert_variables,
        warm_start=lambda model: _adapters_from_baseline(model, data, config),
        evaluate=evaluate,
        scalars=_adapter_scale_scalars(data, experts),
    )


def _adapters_from_baseline(model: resnet_v2.ResNetV2, data: Upstream, config) -> None:
    """The adapter job's warm start: B's weights, and with ``model.adapter_scale`` each
    block's adapter scale set to B's stream RMS at its input, on one batch of the
    job's own training mix."""
    model.copy_backbone_from(data.baseline(config))
    if model.adapter_scale:
        batch = next(iter(data.read(
            pipelines.expert_mix, list(data.experts), split="train", batch=SCALE_IMAGES,
            training=False,
        )))  # fmt: skip
        scales = model.calibrate_adapter_scales(batch["image"], batch["expert"])
        print(f"[adapter] output scales from B's stream RMS: {np.round(scales, 3).tolist()}")


def _adapter_scale_scalars(data: Upstream, experts: list[str], images: int = 64):
    """``Job.scalars`` of the adapter job: RMS(a(x)) / RMS(x) of each block's adapter on
    a fixed validation batch routed to its images' experts (one compiled forward pass
    per log line)."""
    held = {}

    def scalars(model) -> dict[str, float]:
        if not held:
            ds = data.read(
                pipelines.expert_mix, experts, split=EVAL_SPLIT, batch=images, training=False
            )
            held["batch"] = next(iter(ds.take(1)))
            held["fn"] = tf.function(model.adapter_rms_ratios, autograph=False)
        batch = held["batch"]
        ratios = held["fn"](batch["image"], batch["expert"]).numpy()
        return {f"adapter_rms_ratio/block{b + 1}": float(r) for b, r in enumerate(ratios)}

    return scalars


def epn_job(config, data: Upstream) -> loop.Job:
    experts = list(data.experts)

    def batches(split, batch, training, seed=0, start=0):
        return data.read(
            pipelines.expert_prediction, experts, split=split, batch=batch, training=training,
            seed=seed, start=start,
        )  # fmt: skip

    def evaluate(model):
        total, loss, hit = 0, 0.0, 0
        predict = data.logits_fn(model)
        for batch in batches(EVAL_SPLIT, _eval_batch(config), False):
            logits = predict(batch["image"]).numpy()
            targets = batch["expert_targets"].numpy()
            loss += float(tf.reduce_sum(sigmoid_loss(targets, logits)))
            hit += int(np.sum(targets[np.arange(len(logits)), np.argmax(logits, -1)] > 0))
            total += len(logits)
        return {"loss": loss / max(1, total), "prec1": hit / max(1, total), "images": total}

    return loop.Job(
        name="epn",
        build_model=lambda: sigmoid_model(config, len(experts)).build_for(),
        dataset_fn=lambda ctx, batch, seed, start: _sharded(
            ctx, batches("train", batch, True, seed, start)
        ),
        per_example_loss=lambda m, b: sigmoid_loss(
            b["expert_targets"], m(b["image"], training=True)["logits"]
        ),
        warm_start=lambda model: model.copy_backbone_from(
            data.baseline(config), include_head=False
        ),
        evaluate=evaluate,
    )

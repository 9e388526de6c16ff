"""The training loop every upstream job shares: distributed, resumable, observable.

A ``Job`` says what to train (model, data, loss, trainable variables, warm start,
evaluation); ``train`` runs it under a tf.distribute strategy:

* the global batch is split over replicas and each replica's loss is averaged over
  the *global* batch, so gradients summed across replicas equal the single-device
  gradient;
* ``tf.train.CheckpointManager`` saves periodically; a rerun restores the latest
  checkpoint and stops at the same total step count, and a finished job is not
  trained again;
* progress lines on the console, TensorBoard scalars (loss, learning rate, images/s);
* at the end, the model alone and its evaluation are written atomically, for warm
  starts and for hub export.

Where each of these lives in the job's directory is ``experts.work_tree``'s to say.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ml_collections
import tensorflow as tf
import tf_keras as keras

from experts import work_tree
from experts.training import distribute, schedules


@dataclasses.dataclass
class Job:
    """One training job. Callables receive the model built by ``build_model``.

    dataset_fn(input_context, per_replica_batch, seed) -> tf.data.Dataset of batches
        (dicts), infinite. It must shard by ``input_context.input_pipeline_id`` when
        there are several input pipelines.
    per_example_loss(model, batch) -> float [batch] (training mode).
    trainable_variables(model) -> the variables this job updates.
    warm_start(model) -> None: initialises a fresh model (e.g. from B); not called
        when resuming.
    evaluate(model) -> dict of floats, run once at the end on the chief.
    reuse_key: jobs sharing a key (and the train config and strategy) have the same
        model structure, trainable variables and loss, and a warm start that sets every
        model weight; one process then builds and traces their training step once and
        reuses it, re-initialising the model by ``warm_start`` and zeroing the optimiser.
        Full experts share one: tracing costs as much as 100 steps at the cpu preset.
    """

    name: str
    build_model: Callable[[], keras.Model]
    dataset_fn: Callable[[tf.distribute.InputContext, int, int], tf.data.Dataset]
    per_example_loss: Callable[[keras.Model, dict], tf.Tensor]
    trainable_variables: Callable[[keras.Model], list[tf.Variable]] = lambda model: (
        model.trainable_variables
    )
    warm_start: Callable[[keras.Model], None] | None = None
    evaluate: Callable[[keras.Model], dict[str, float]] | None = None
    reuse_key: str | None = None


@dataclasses.dataclass
class _Compiled:
    """What ``train`` builds for a job: kept per ``Job.reuse_key`` for the next job."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    schedule: schedules.WarmupDecay
    loss_mean: keras.metrics.Mean
    run_steps: Callable


_COMPILED: dict[tuple, _Compiled] = {}


def default_train_config() -> ml_collections.ConfigDict:
    """The optimisation fields every job config carries (overridden per preset)."""
    return ml_collections.ConfigDict(
        {
            "total_steps": 100,
            "global_batch": 64,
            "base_lr": 0.1,  # per 256 images, scaled linearly with the batch (BiT)
            "warmup_fraction": 0.05,
            "decay": "cosine",
            "momentum": 0.9,
            "weight_decay": 1e-4,  # L2 on kernels, as BiT upstream
            "log_every": 20,
            "checkpoint_every": 200,
            "steps_per_call": 1,  # train steps inside one tf.function call
            "keep_checkpoints": 2,
            "seed": 0,
        }
    )


def _log(name: str, message: str) -> None:
    print(f"[{name}] {message}", flush=True)


def _format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def train(
    job: Job,
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    strategy: tf.distribute.Strategy | None = None,
) -> dict:
    """Trains ``job`` to ``config.total_steps`` in ``workdir``; returns its metrics
    (and a "losses" list of the logged training losses when it trained)."""
    strategy = strategy or tf.distribute.get_strategy()
    jobdir = work_tree.JobDir(Path(workdir))
    chief = distribute.is_chief(strategy)
    if jobdir.finished():
        _log(job.name, f"already finished in {jobdir.path}; skipping")
        return jobdir.metrics()

    replicas = strategy.num_replicas_in_sync
    if config.global_batch % replicas:
        raise ValueError(
            f"global_batch={config.global_batch} is not divisible by {replicas} replicas"
        )
    total = int(config.total_steps)
    peak = schedules.scaled_learning_rate(config.base_lr, config.global_batch)
    key = None
    if job.reuse_key is not None and job.warm_start is not None:
        key = (job.reuse_key, id(strategy), json.dumps(config.to_dict(), sort_keys=True))
    compiled = _COMPILED.get(key) if key else None
    if compiled is None:
        compiled = _compile(job, config, strategy, peak, total)
        if key:
            _COMPILED.clear()  # one compiled job at a time: models hold memory
            _COMPILED[key] = compiled
    else:
        for variable in compiled.optimizer.variables:
            variable.assign(tf.zeros_like(variable))
        compiled.optimizer.iterations.assign(0)
        compiled.loss_mean.reset_state()
    model, optimizer, schedule = compiled.model, compiled.optimizer, compiled.schedule
    loss_mean, run_steps = compiled.loss_mean, compiled.run_steps
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    # Every multi-worker process must save; only the chief's copy is kept.
    checkpoint_dir = jobdir.checkpoints
    if not chief:
        checkpoint_dir = Path(tempfile.mkdtemp(prefix="worker-checkpoints-"))
    manager = tf.train.CheckpointManager(
        checkpoint, str(checkpoint_dir), max_to_keep=config.keep_checkpoints
    )
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        _log(job.name, f"resumed from {manager.latest_checkpoint}")
    elif job.warm_start is not None:
        job.warm_start(model)
    start = int(optimizer.iterations.numpy())

    per_replica_batch = config.global_batch // replicas
    # Reseeding with the start step keeps a resumed run deterministic without
    # checkpointing the input pipeline's shuffle buffers.
    dataset = strategy.distribute_datasets_from_function(
        lambda ctx: job.dataset_fn(ctx, per_replica_batch, config.seed + start)
    )
    iterator = iter(dataset)

    writer = tf.summary.create_file_writer(str(jobdir.tensorboard)) if chief else None
    losses, step = [], start
    # Throughput from the first to the last log line: excludes tracing and final saves.
    steady_start = steady_step = None
    _log(
        job.name,
        f"training steps {start}..{total} on {replicas} replica(s), "
        f"global batch {config.global_batch}, peak lr {peak:.4g}",
    )
    window_start, window_step, run_start = time.perf_counter(), start, time.perf_counter()
    while step < total:
        steps = min(config.steps_per_call, total - step, config.log_every - step % config.log_every)
        run_steps(iterator, tf.constant(steps))
        step += steps
        if step % config.log_every == 0 or step == total:
            loss = float(loss_mean.result())
            loss_mean.reset_state()
            now = time.perf_counter()
            images_per_s = (step - window_step) * config.global_batch / (now - window_start)
            eta = (total - step) * (now - run_start) / max(1, step - start)
            lr = float(schedule(step - 1))
            losses.append(loss)
            _log(
                job.name,
                f"step {step}/{total} loss {loss:.4f} lr {lr:.4g} "
                f"{images_per_s:,.0f} img/s eta {_format_seconds(eta)}",
            )
            if writer:
                with writer.as_default(step=step):
                    tf.summary.scalar("train/loss", loss)
                    tf.summary.scalar("train/learning_rate", lr)
                    tf.summary.scalar("train/images_per_second", images_per_s)
            window_start, window_step = time.perf_counter(), step
            if steady_start is None:
                steady_start, steady_step = window_start, step
        if step % config.checkpoint_every == 0 or step == total:
            manager.save(checkpoint_number=step)

    end = time.perf_counter()
    metrics = {"steps": total, "train_seconds": round(end - run_start, 1)}
    steady = {}
    if steady_start is not None and window_step > steady_step:  # window_*: the last log
        seconds = window_start - steady_start
        steady["images_per_second"] = (window_step - steady_step) * config.global_batch / seconds
    if chief:
        if job.evaluate is not None:
            eval_start = time.perf_counter()
            metrics.update(job.evaluate(model))
            metrics["eval_seconds"] = round(time.perf_counter() - eval_start, 1)
            _log(job.name, "eval " + _summary(metrics, jobdir))
            if writer:
                with writer.as_default(step=total):
                    for key, value in metrics.items():
                        tf.summary.scalar(f"eval/{key}", value)
        jobdir.write_final(model, metrics)
    else:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return {**metrics, **steady, "losses": losses}


def _compile(job: Job, config, strategy, peak: float, total: int) -> _Compiled:
    """Builds the model, optimiser and the traced multi-step training function."""
    replicas = strategy.num_replicas_in_sync
    schedule = schedules.WarmupDecay(
        peak, total, schedules.warmup_steps_for(total, config.warmup_fraction), config.decay
    )
    with strategy.scope():
        model = job.build_model()
        variables = job.trainable_variables(model)
        decayed = [v for v in variables if "kernel" in v.name]
        optimizer = keras.optimizers.SGD(schedule, momentum=config.momentum)
        optimizer.build(variables)
        loss_mean = keras.metrics.Mean()

    def step_fn(batch):
        with tf.GradientTape() as tape:
            per_example = job.per_example_loss(model, batch)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=config.global_batch)
            if config.weight_decay and decayed:
                # Gradients are summed over replicas, so each adds its share.
                loss += (
                    config.weight_decay * tf.add_n([tf.nn.l2_loss(v) for v in decayed]) / replicas
                )
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        loss_mean.update_state(tf.reduce_mean(per_example))

    @tf.function
    def run_steps(iterator, steps):
        for _ in tf.range(steps):
            strategy.run(step_fn, args=(next(iterator),))

    return _Compiled(model, optimizer, schedule, loss_mean, run_steps)


def _summary(metrics: dict, jobdir: work_tree.JobDir, shown: int = 10) -> str:
    """The first metrics on one console line; jobs with many (one set per adapter
    expert) point to the file instead of printing hundreds."""
    items = [f"{k} {v:.4g}" for k, v in metrics.items()]
    rest = len(items) - shown
    more = f" ... and {rest} more in {jobdir.metrics_path}" if rest > 0 else ""
    return " ".join(items[:shown]) + more

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
  starts and for hub export;
* ``precision`` (``experts.training.precision``): the job's model must compute in it
  (jobs build their models with it); under ``mixed_float16`` the loss is scaled
  dynamically. Variables are float32 in every precision, so checkpoints are too.

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
from experts.training import distribute, precision, schedules


@dataclasses.dataclass
class Job:
    """One training job. Callables receive the model built by ``build_model``.

    dataset_fn(input_context, per_replica_batch, seed, start) -> tf.data.Dataset of
        batches (dicts), infinite: the seed's stream of examples from example ``start``
        on (``start`` is the step times the global batch). A resumed run continues
        exactly where it stopped when that stream is a function of (seed, start) alone
        (data/streams.py). It must shard by ``input_context.input_pipeline_id`` when
        there are several input pipelines.
    per_example_loss(model, batch) -> float [batch] (training mode).
    trainable_variables(model) -> the variables this job updates.
    warm_start(model) -> None: initialises a fresh model (e.g. from B); not called
        when resuming.
    evaluate(model) -> dict of floats, run once at the end on the chief.
    scalars(model) -> dict of floats, run on the chief at every log line, written to
        TensorBoard under ``train/`` and onto the console line: cheap views of the
        model's state as it trains (e.g. the adapters' scale).
    reuse_key: jobs sharing a key (and the train config and strategy) have the same
        model structure, trainable variables and loss, and a warm start that sets every
        model weight; one process then builds and traces their training step once and
        reuses it, re-initialising the model by ``warm_start`` and zeroing the optimiser.
        Full experts share one: tracing costs as much as 100 steps at the cpu preset.
    """

    name: str
    build_model: Callable[[], keras.Model]
    dataset_fn: Callable[[tf.distribute.InputContext, int, int, int], tf.data.Dataset]
    per_example_loss: Callable[[keras.Model, dict], tf.Tensor]
    trainable_variables: Callable[[keras.Model], list[tf.Variable]] = lambda model: (
        model.trainable_variables
    )
    warm_start: Callable[[keras.Model], None] | None = None
    evaluate: Callable[[keras.Model], dict[str, float]] | None = None
    scalars: Callable[[keras.Model], dict[str, float]] | None = None
    reuse_key: str | None = None


@dataclasses.dataclass
class _Compiled:
    """What ``train`` builds for a job, and what a job with the same reuse key reuses."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    schedule: schedules.WarmupDecay
    loss_mean: keras.metrics.Mean
    run_steps: Callable

    def reset(self) -> None:
        """Back to step 0 with a fresh optimiser; the next warm start sets the model."""
        for variable in self.optimizer.variables:
            variable.assign(tf.zeros_like(variable))
        self.optimizer.iterations.assign(0)
        precision.reset_loss_scale(self.optimizer)
        self.loss_mean.reset_state()


class CompiledJobs:
    """Keeps the last compiled job for the next one with the same ``Job.reuse_key``,
    train config and strategy. Held by whoever runs a sequence of jobs (experts.train
    holds one per run), so nothing outlives that run; one job at a time, since models
    hold memory."""

    def __init__(self):
        self._key: tuple | None = None
        self._compiled: _Compiled | None = None
        self.reused = 0

    def get(self, job: Job, config, strategy, peak: float, total: int) -> _Compiled:
        key = None
        if job.reuse_key is not None and job.warm_start is not None:
            key = (job.reuse_key, id(strategy), json.dumps(config.to_dict(), sort_keys=True))
        if key is not None and key == self._key:
            self.reused += 1
            self._compiled.reset()
            return self._compiled
        compiled = _compile(job, config, strategy, peak, total)
        if key is not None:
            self._key, self._compiled = key, compiled
        return compiled


def default_train_config() -> ml_collections.ConfigDict:
    """The optimisation fields every job config carries (overridden per preset)."""
    return ml_collections.ConfigDict(
        {
            "total_steps": 100,
            "global_batch": 64,
            "base_lr": 0.1,  # per 256 images, scaled linearly with the batch (BiT)
            "warmup_fraction": 0.05,
            "decay": "cosine",
            "step_boundaries": (0.3, 0.6, 0.9),  # "step" decay: 10x at these fractions
            "momentum": 0.9,
            "weight_decay": 1e-4,  # L2 on kernels, as BiT upstream
            "log_every": 20,
            "checkpoint_every": 200,
            "steps_per_call": 1,  # train steps inside one tf.function call
            "keep_checkpoints": 2,
            "seed": 0,  # initial weights and input order
            # Deterministic kernels too (tf.config.experimental.enable_op_determinism):
            # the same weights from run to run, at a cost in speed (RESULTS.md).
            "deterministic": False,
            # float32 | mixed_bfloat16 | mixed_float16 | auto (experts/training/precision.py)
            "precision": "float32",
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
    compiled_jobs: CompiledJobs | None = None,
) -> dict:
    """Trains ``job`` to ``config.total_steps`` in ``workdir``; returns its metrics
    (and a "losses" list of the logged training losses when it trained). Jobs run in
    sequence share ``compiled_jobs`` to reuse a compiled training step."""
    strategy = strategy or tf.distribute.get_strategy()
    jobdir = work_tree.JobDir(Path(workdir))
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
    compiled = (compiled_jobs or CompiledJobs()).get(job, config, strategy, peak, total)
    chief = distribute.is_chief(strategy)
    # Every multi-worker process must save; only the chief's copy is kept.
    checkpoints = jobdir.checkpoints if chief else Path(tempfile.mkdtemp(prefix="worker-ckpt-"))
    manager = _restore_or_warm_start(job, compiled, config, checkpoints)
    start = int(compiled.optimizer.iterations.numpy())
    writer = tf.summary.create_file_writer(str(jobdir.tensorboard)) if chief else None
    _log(
        job.name,
        f"training steps {start}..{total} on {replicas} replica(s), "
        f"global batch {config.global_batch}, peak lr {peak:.4g}, "
        f"{compiled.model.dtype_policy.name}",
    )
    progress = _Progress(job.name, total, config.global_batch, start, writer)
    _run(job, compiled, config, strategy, manager, progress)
    metrics = {"steps": total, "train_seconds": progress.seconds()}
    if chief:
        metrics = _evaluate_and_save(job, compiled.model, metrics, jobdir, writer)
    else:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return {**metrics, **progress.steady(), "losses": progress.losses}


def _restore_or_warm_start(job: Job, compiled: _Compiled, config, checkpoints: Path):
    """The job's checkpoint manager, with the latest checkpoint restored, or else the
    job's warm start applied."""
    checkpoint = tf.train.Checkpoint(model=compiled.model, optimizer=compiled.optimizer)
    manager = tf.train.CheckpointManager(
        checkpoint, str(checkpoints), max_to_keep=config.keep_checkpoints
    )
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        _log(job.name, f"resumed from {manager.latest_checkpoint}")
    elif job.warm_start is not None:
        job.warm_start(compiled.model)
    return manager


def _run(job: Job, compiled: _Compiled, config, strategy, manager, progress: _Progress):
    """Steps from the restored step to the total, logging and checkpointing."""
    step, total = progress.start, progress.total
    per_replica_batch = config.global_batch // strategy.num_replicas_in_sync
    # The input's place is not checkpointed: the pipeline starts where the examples
    # trained on so far end (a pure function of seed and step, cheap to reach at any
    # scale; data/streams.py says why not a checkpointed iterator), and the optimiser's
    # step counter (in the checkpoint) drives the learning rate schedule.
    start = step * config.global_batch
    dataset = strategy.distribute_datasets_from_function(
        lambda ctx: job.dataset_fn(ctx, per_replica_batch, config.seed, start)
    )
    iterator = iter(dataset)
    while step < total:
        steps = min(config.steps_per_call, total - step, config.log_every - step % config.log_every)
        compiled.run_steps(iterator, tf.constant(steps))
        step += steps
        if step % config.log_every == 0 or step == total:
            loss = float(compiled.loss_mean.result())
            compiled.loss_mean.reset_state()
            extra = job.scalars(compiled.model) if job.scalars and progress.writer else {}
            progress.log(step, loss, float(compiled.schedule(step - 1)), extra)
        if step % config.checkpoint_every == 0 or step == total:
            manager.save(checkpoint_number=step)


@dataclasses.dataclass
class _Progress:
    """A run's console lines and TensorBoard scalars, and its speed between them."""

    name: str
    total: int
    global_batch: int
    start: int
    writer: tf.summary.SummaryWriter | None
    losses: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self.run_start = self.window_start = time.perf_counter()
        self.window_step = self.start
        # Throughput from the first to the last log line: excludes tracing and saves.
        self.steady_start = self.steady_step = None

    def log(self, step: int, loss: float, lr: float, extra: dict | None = None) -> None:
        now = time.perf_counter()
        images_per_s = (step - self.window_step) * self.global_batch / (now - self.window_start)
        eta = (self.total - step) * (now - self.run_start) / max(1, step - self.start)
        self.losses.append(loss)
        _log(
            self.name,
            f"step {step}/{self.total} loss {loss:.4f} lr {lr:.4g} "
            f"{images_per_s:,.0f} img/s eta {_format_seconds(eta)}"
            + "".join(f" {k} {v:.4g}" for k, v in (extra or {}).items()),
        )
        if self.writer:
            with self.writer.as_default(step=step):
                tf.summary.scalar("train/loss", loss)
                tf.summary.scalar("train/learning_rate", lr)
                tf.summary.scalar("train/images_per_second", images_per_s)
                for key, value in (extra or {}).items():
                    tf.summary.scalar(f"train/{key}", value)
        self.window_start, self.window_step = time.perf_counter(), step
        if self.steady_start is None:
            self.steady_start, self.steady_step = self.window_start, step

    def seconds(self) -> float:
        return round(time.perf_counter() - self.run_start, 1)

    def steady(self) -> dict:
        """Images per second between the first and the last log line, when they differ."""
        if self.steady_start is None or self.window_step <= self.steady_step:
            return {}
        seconds = self.window_start - self.steady_start
        return {
            "images_per_second": (self.window_step - self.steady_step) * self.global_batch / seconds
        }


def _evaluate_and_save(job: Job, model, metrics: dict, jobdir: work_tree.JobDir, writer) -> dict:
    """Evaluates the trained model (on the chief) and writes final/ with its metrics."""
    if job.evaluate is not None:
        eval_start = time.perf_counter()
        metrics = {**metrics, **job.evaluate(model)}
        metrics["eval_seconds"] = round(time.perf_counter() - eval_start, 1)
        _log(job.name, "eval " + _summary(metrics, jobdir))
        if writer:
            with writer.as_default(step=metrics["steps"]):
                for key, value in metrics.items():
                    tf.summary.scalar(f"eval/{key}", value)
    jobdir.write_final(model, metrics)
    return metrics


def _compile(job: Job, config, strategy, peak: float, total: int) -> _Compiled:
    """Builds the model, optimiser and the traced multi-step training function."""
    replicas = strategy.num_replicas_in_sync
    schedule = schedules.WarmupDecay(
        peak,
        total,
        schedules.warmup_steps_for(total, config.warmup_fraction),
        config.decay,
        tuple(config.get("step_boundaries", (0.3, 0.6, 0.9))),
    )
    if config.get("deterministic", False):
        tf.config.experimental.enable_op_determinism()  # for the whole process
    # The initial weights follow the seed: unseeded, every run started elsewhere.
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = job.build_model()
        _check_precision(job, model, config)
        variables = job.trainable_variables(model)
        decayed = [v for v in variables if "kernel" in v.name]
        optimizer = keras.optimizers.SGD(schedule, momentum=config.momentum)
        scaled = precision.needs_loss_scaling(model)
        if scaled:
            optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
        optimizer.build(variables)
        loss_mean = keras.metrics.Mean()

    def step_fn(batch):
        with tf.GradientTape() as tape:
            per_example = tf.cast(job.per_example_loss(model, batch), tf.float32)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=config.global_batch)
            if config.weight_decay and decayed:
                # Gradients are summed over replicas, so each adds its share.
                loss += (
                    config.weight_decay * tf.add_n([tf.nn.l2_loss(v) for v in decayed]) / replicas
                )
            if scaled:
                loss = optimizer.get_scaled_loss(loss)
        grads = tape.gradient(loss, variables)
        if scaled:
            grads = optimizer.get_unscaled_gradients(grads)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        loss_mean.update_state(tf.reduce_mean(per_example))

    @tf.function
    def run_steps(iterator, steps):
        for _ in tf.range(steps):
            strategy.run(step_fn, args=(next(iterator),))

    return _Compiled(model, optimizer, schedule, loss_mean, run_steps)


def _check_precision(job: Job, model: keras.Model, config) -> None:
    """The job's model must compute in the configured precision: the loss scaling
    follows the model, and the recorded config must say how it was trained."""
    wanted = precision.of_config(config)
    if model.dtype_policy.name != wanted:
        raise ValueError(
            f"{job.name}: train.precision is {wanted} but the job's model computes in "
            f"{model.dtype_policy.name} (build it with dtype=precision.policy(...))"
        )


def _summary(metrics: dict, jobdir: work_tree.JobDir, shown: int = 10) -> str:
    """The first metrics on one console line; jobs with many (one set per adapter
    expert) point to the file instead of printing hundreds."""
    items = [f"{k} {v:.4g}" for k, v in metrics.items()]
    rest = len(items) - shown
    more = f" ... and {rest} more in {jobdir.metrics_path}" if rest > 0 else ""
    return " ".join(items[:shown]) + more

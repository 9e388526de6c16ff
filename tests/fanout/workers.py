"""Job functions the fan-out tests hand to Ray workers (importable by them)."""

import dataclasses
import os
import signal
import time
from pathlib import Path

import tensorflow as tf

from experts import work_tree
from experts.training import distribute, loop
from tests.training import synthetic


def synthetic_multi_worker(workdir: str) -> dict:
    """The loop tests' synthetic job under MultiWorkerMirroredStrategy (Ray Train's
    TF_CONFIG); returns the logged losses."""
    strategy = distribute.make_strategy("multi_worker_mirrored")
    result = loop.train(synthetic.job(), synthetic.config(), workdir, strategy)
    return {"losses": result["losses"], "replicas": strategy.num_replicas_in_sync}


def train_killed_once(workdir: str, marker: str, **overrides) -> dict:
    """The synthetic job, holding its directory as real jobs do, whose first attempt's
    process is killed (SIGKILL, as a lost worker) once a checkpoint exists; later
    attempts (``marker`` exists) train on."""
    first = not os.path.exists(marker)
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    job = synthetic.job()
    if first:
        checkpoints = str(Path(workdir) / "checkpoints")

        def kill_once_checkpointed():
            if tf.train.latest_checkpoint(checkpoints):
                os.kill(os.getpid(), signal.SIGKILL)
            return True

        def dataset_fn(ctx, batch, seed, start, inner=job.dataset_fn):
            def check(example):
                alive = tf.py_function(kill_once_checkpointed, [], tf.bool)
                with tf.control_dependencies([alive]):
                    return {k: tf.identity(v) for k, v in example.items()}

            return inner(ctx, batch, seed, start).map(check)

        job = dataclasses.replace(job, dataset_fn=dataset_fn)
    with work_tree.JobDir(Path(workdir)).lock():
        return loop.train(job, synthetic.config(**overrides), workdir)


def train_interrupted_and_resumed(workdir: str, fail_after: int, **overrides) -> dict:
    """The synthetic job stopped by an error after ``fail_after`` examples, then rerun
    to the end in the same worker: a resume in the same kind of process as a retried
    Ray job."""
    config = synthetic.config(**overrides)
    try:
        loop.train(synthetic.job(fail_after=fail_after), config, workdir)
    except tf.errors.InvalidArgumentError:
        pass
    else:
        raise AssertionError(f"the run did not stop after {fail_after} examples")
    return loop.train(synthetic.job(), config, workdir)


def hold_and_record(directory: str, log: str, seconds: float) -> int:
    """Holds ``directory`` for ``seconds``, appending when it got it and let go."""
    import fanout

    with fanout.hold(directory, wait=True, log=lambda m: None):
        with open(log, "a") as f:
            f.write(f"start {os.getpid()} {time.time()}\n")
        time.sleep(seconds)
        with open(log, "a") as f:
            f.write(f"end {os.getpid()} {time.time()}\n")
    return os.getpid()


def square(x: int) -> int:
    return x * x


def fail(message: str):
    raise ValueError(message)


def pid_file(path: str) -> Path:
    return Path(path)

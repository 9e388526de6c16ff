"""One training job across several workers, through Ray Train's ``TensorflowTrainer``.

Ray Train starts ``workers`` processes, writes each one's ``TF_CONFIG`` (the cluster's
addresses and the worker's index) and runs ``fn(*args)`` in each; ``fn`` builds a
``MultiWorkerMirroredStrategy`` from that ``TF_CONFIG`` and trains (the trainer writes
checkpoints and the final model from the chief only). This replaces hand-written
``TF_CONFIG`` files and one launch per machine. Rank 0's return value is returned.

On a Ray started on this machine the workers talk over the loopback interface:
Ray Train fills ``TF_CONFIG`` with the machine's network address, so ``loopback``
rewrites the hosts to 127.0.0.1 (on a real cluster the addresses are left as they are).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable

from fanout import executors

RESULT_FILE = "result.json"


def loopback_tf_config() -> None:
    """Points every address of this process's ``TF_CONFIG`` at 127.0.0.1, same ports."""
    config = json.loads(os.environ["TF_CONFIG"])
    config["cluster"] = {
        role: [f"127.0.0.1:{address.rsplit(':', 1)[1]}" for address in addresses]
        for role, addresses in config["cluster"].items()
    }
    os.environ["TF_CONFIG"] = json.dumps(config)


def _worker_loop(loop_config: dict) -> None:
    import ray.train

    if loop_config["loopback"]:
        loopback_tf_config()
    result = loop_config["fn"](*loop_config["args"])
    # Every worker reports (Ray Train expects it of all); rank 0 attaches its result as
    # a checkpoint, the one kind of report Ray Train keeps for the driver.
    if ray.train.get_context().get_world_rank() != 0:
        ray.train.report({})
        return
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, RESULT_FILE), "w") as f:
            json.dump(result, f, default=float)
        ray.train.report({}, checkpoint=ray.train.Checkpoint.from_directory(directory))


def run(
    fn: Callable,
    args: tuple,
    workers: int,
    resources: executors.Resources = executors.ONE_CPU,
    address: str = "",
    storage: str | None = None,
):
    """``fn(*args)`` on ``workers`` Ray Train workers (a local Ray when ``address`` is
    empty); returns rank 0's result. ``storage``: where Ray Train keeps its own run
    records (a temporary directory by default; the job's artefacts are ``fn``'s)."""
    import ray.train
    from ray.train.tensorflow import TensorflowTrainer

    executors.start_ray(address)
    gpus = resources.gpus > 0
    per_worker = {"CPU": resources.cpus, **({"GPU": resources.gpus} if gpus else {})}
    storage = storage or tempfile.mkdtemp(prefix="ray-train-")
    trainer = TensorflowTrainer(
        _worker_loop,
        train_loop_config={"fn": fn, "args": args, "loopback": not address},
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=gpus, resources_per_worker=per_worker
        ),
        run_config=ray.train.RunConfig(storage_path=os.path.abspath(storage)),
    )
    outcome = trainer.fit()
    if outcome.error is not None:
        raise outcome.error
    with outcome.checkpoint.as_directory() as directory:
        with open(os.path.join(directory, RESULT_FILE)) as f:
            return json.load(f)

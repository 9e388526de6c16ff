"""Fan-out of independent jobs: in this process (the default) or as Ray tasks.

The pipeline is already made of independent, resumable jobs: every upstream job has its
own work directory and checkpoints, every module its own export, every (task, module)
fine-tuning its own result file. This package runs a list of such jobs with an
executor the binaries share (``--executor=local|ray``, ``fanout.flags``), holds a job's
work directory while it runs (``locks``), and trains one job across workers with Ray
Train (``ray_train``). It also holds what every package shares: the one loader of hub
modules, which refuses a module whose graphs hold an op off an allow-list
(``module_check``, ``allowed_ops``); the one-line error of every binary (``cli``); the
file rules (``files``: atomic writes; a directory is replaced or removed only by the
command that made it); the check that a rerun's config matches the one its directory
recorded (``recorded_config``); what a worker keeps between the jobs of one run
(``worker_cache``); what both sides' readers of one kind of input must agree on
(``image_folders``: what an image folder is); and TensorFlow's mixed-precision rewrite
for running hub modules (``precision``). It imports none of the project's other
packages, so upstream and downstream binaries alike can use it. Its benchmark (Ray
against local) is in ``bench/``.
"""

from fanout.executors import (
    Executor,
    Job,
    LocalExecutor,
    RayExecutor,
    Resources,
    make_executor,
    resolve,
)
from fanout.locks import Busy, hold

__all__ = [
    "Busy",
    "Executor",
    "Job",
    "LocalExecutor",
    "RayExecutor",
    "Resources",
    "hold",
    "make_executor",
    "resolve",
]

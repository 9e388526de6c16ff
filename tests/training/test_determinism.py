"""Upstream training is reproducible: the initial weights follow the config's seed, and
with ``train.deterministic`` two runs of one config end at the very same weights, as
does a run killed part way and rerun."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from experts import work_tree
from experts.models import resnet_v2
from experts.training import loop
from tests.data.conftest import make_folder, prepare_folder_builder
from tests.training import determinism_worker, synthetic

REPO = Path(__file__).resolve().parents[2]


def test_the_initial_weights_follow_the_seed(tmp_path):
    initial = []

    def build_unseeded():  # as the real jobs build their models
        model = resnet_v2.ResNetV2("r14x0.125", synthetic.NUM_CLASSES)
        model.build_for(synthetic.IMAGE_SIZE)
        initial.append([w.numpy() for w in model.weights])
        return model

    for run, seed in enumerate((3, 3, 4)):
        job = synthetic.job()
        job.build_model = build_unseeded
        loop.train(job, synthetic.config(total_steps=1, seed=seed), tmp_path / str(run))
    same = [np.array_equal(a, b) for a, b in zip(initial[0], initial[1], strict=True)]
    other = [np.array_equal(a, b) for a, b in zip(initial[0], initial[2], strict=True)]
    assert all(same) and not all(other)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("upstream")
    prepare_folder_builder(make_folder(str(root / "manual")), str(root / "tfds"))
    return str(root / "tfds")


def _worker(data_dir, workdir, out=None):
    """The worker's command line: trains the smoke B in ``workdir``, saving its tensors
    to ``out`` when given."""
    args = [data_dir, str(workdir)] + ([str(out)] if out else [])
    return [sys.executable, "-m", "tests.training.determinism_worker", *args]


def _train(data_dir, workdir, out) -> dict:
    run = subprocess.run(_worker(data_dir, workdir, out), cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    with np.load(out) as saved:
        return {k: saved[k] for k in saved.files}


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    return _train(data_dir, root / "run", root / "tensors.npz")


def _assert_same_tensors(actual: dict, expected: dict, context: str = "") -> None:
    assert actual.keys() == expected.keys(), context
    different = [k for k in expected if not np.array_equal(actual[k], expected[k])]
    assert not different, f"{context}{len(different)} of {len(expected)} differ: {different[:5]}"


def test_two_deterministic_runs_end_at_the_same_weights(data_dir, uninterrupted, tmp_path):
    assert sum(k.startswith("final|model|") for k in uninterrupted) > 10
    _assert_same_tensors(_train(data_dir, tmp_path / "b", tmp_path / "b.npz"), uninterrupted)


def test_a_killed_deterministic_run_resumes_to_the_uninterrupted_weights(
    data_dir, uninterrupted, tmp_path
):
    """Killed after a random step (past the first checkpoint, before the last step),
    then rerun: the same checkpoint and final weights as the run never interrupted.
    RESUME_TEST_SEED=<seed from the failure message> replays a failing choice."""
    seed = int(os.environ.get("RESUME_TEST_SEED", time.time_ns()))
    rng = random.Random(seed)
    kill_after = rng.randint(
        determinism_worker.CHECKPOINT_EVERY + 1, determinism_worker.TOTAL_STEPS - 2
    )
    how = rng.choice([signal.SIGKILL, signal.SIGTERM])
    context = f"RESUME_TEST_SEED={seed}: {how.name} after step {kill_after}: "
    workdir = tmp_path / "run"
    with subprocess.Popen(
        _worker(data_dir, workdir), cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    ) as worker:  # fmt: skip
        line = ""
        for line in worker.stdout:
            if f"] step {kill_after}/" in line:
                worker.send_signal(how)
                break
        output = line + worker.communicate()[0]
    assert worker.returncode == -how, context + output[-3000:]
    job = work_tree.JobDir(workdir / "baseline")
    assert not job.finished() and tf.train.latest_checkpoint(job.checkpoints), context

    resumed = _train(data_dir, workdir, tmp_path / "resumed.npz")
    _assert_same_tensors(resumed, uninterrupted, context)

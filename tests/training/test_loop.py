import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from experts import work_tree
from experts.training import distribute, loop
from tests.training import synthetic

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.one_pass
def test_one_step_smoke_run_writes_final_artefacts(tmp_path, capsys):
    result = loop.train(synthetic.job(), synthetic.config(total_steps=1), tmp_path)
    assert result["steps"] == 1 and len(result["losses"]) == 1
    assert work_tree.JobDir(tmp_path).finished()
    assert set(work_tree.JobDir(tmp_path).metrics()) == {
        "steps",
        "train_seconds",
        "eval_seconds",
        "accuracy",
    }
    assert tf.train.list_variables(work_tree.JobDir(tmp_path).final_model)
    assert list((tmp_path / "tensorboard").iterdir())
    assert "step 1/1 loss" in capsys.readouterr().out


def test_training_reduces_the_loss(tmp_path):
    # At this learning rate the path of the weights depends on the CPU's float rounding
    # (thread count, oneDNN or not): how far the accuracy gets in 80 steps varies with
    # it. What any correct loop gives is a halved loss and an accuracy well above
    # chance (1/4): twice chance is the bound, which a loop that does not learn stays
    # below.
    result = loop.train(
        synthetic.job(),
        synthetic.config(
            total_steps=80, log_every=10, global_batch=16, base_lr=0.5, weight_decay=0.0
        ),
        tmp_path,
    )
    assert result["losses"][-1] < 0.5 * result["losses"][0]
    assert work_tree.JobDir(tmp_path).metrics()["accuracy"] > 2 / synthetic.NUM_CLASSES


def test_interrupted_run_resumes_and_finished_run_is_not_retrained(tmp_path, capsys):
    config = synthetic.config(total_steps=4, checkpoint_every=2, global_batch=8)
    with pytest.raises(tf.errors.InvalidArgumentError):  # dies during step 3
        loop.train(synthetic.job(fail_after=20), config, tmp_path)
    assert not work_tree.JobDir(tmp_path).finished()
    assert tf.train.latest_checkpoint(tmp_path / "checkpoints").endswith("ckpt-2")

    starts, job = [], synthetic.job()

    def recording_start(ctx, batch, seed, start):
        starts.append(start)
        return synthetic.dataset_fn(ctx, batch, seed, start)

    job = dataclasses.replace(job, dataset_fn=recording_start)
    result = loop.train(job, config, tmp_path)
    out = capsys.readouterr().out
    assert "resumed from" in out and "training steps 2..4" in out
    assert starts == [16]  # the input continues after the 2 steps' 8 examples each
    assert result["steps"] == 4 and len(result["losses"]) == 2
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints"))
    assert reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 4

    again = loop.train(synthetic.job(), config, tmp_path)
    assert "already finished" in capsys.readouterr().out
    assert "losses" not in again and again["steps"] == 4


def test_mirrored_strategy_matches_single_device(tmp_path):
    config = synthetic.config(total_steps=3)
    single = loop.train(synthetic.job(), config, tmp_path / "single")
    strategy = distribute.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    mirrored = loop.train(synthetic.job(), config, tmp_path / "mirrored", strategy)
    np.testing.assert_allclose(mirrored["losses"], single["losses"], rtol=1e-4)
    a = tf.train.load_checkpoint(work_tree.JobDir(tmp_path / "single").final_model)
    b = tf.train.load_checkpoint(work_tree.JobDir(tmp_path / "mirrored").final_model)
    for name, _ in tf.train.list_variables(work_tree.JobDir(tmp_path / "single").final_model):
        if name.startswith("model/"):
            np.testing.assert_allclose(b.get_tensor(name), a.get_tensor(name), atol=1e-5)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_worker_multi_worker_mirrored_matches_single_device(tmp_path):
    single = loop.train(synthetic.job(), synthetic.config(), tmp_path / "single")
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=str(REPO))
        env["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        )
        cmd = [
            sys.executable,
            "-m",
            "tests.training.mwms_worker",
            str(tmp_path / f"losses{index}.json"),
            str(tmp_path / "mwms"),
        ]
        procs.append(
            subprocess.Popen(
                cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-3000:]
    for index in range(2):
        losses = json.loads((tmp_path / f"losses{index}.json").read_text())
        np.testing.assert_allclose(losses, single["losses"], rtol=1e-4)
    assert work_tree.JobDir(tmp_path / "mwms").finished()


@pytest.mark.one_pass
def test_batch_must_split_over_replicas(tmp_path):
    strategy = distribute.make_strategy("mirrored")
    with pytest.raises(ValueError, match="global_batch=7 is not divisible by 2 replicas"):
        loop.train(synthetic.job(), synthetic.config(global_batch=7), tmp_path, strategy)


@pytest.mark.one_pass
def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown strategy 'gpu'"):
        distribute.make_strategy("gpu")


@pytest.mark.one_pass
def test_long_evaluations_are_summarised_on_the_console(tmp_path):
    metrics = {f"expert{i}/top1": i / 100 for i in range(30)}
    line = loop._summary(metrics, work_tree.JobDir(tmp_path))
    assert line.startswith("expert0/top1 0 expert1/top1 0.01")
    assert "expert9/top1" in line and "expert10/top1" not in line
    assert line.endswith(f"... and 20 more in {tmp_path / 'final' / 'metrics.json'}")
    assert loop._summary({"loss": 1.5}, work_tree.JobDir(tmp_path)) == "loss 1.5"


def test_jobs_sharing_a_reuse_key_train_as_if_alone(tmp_path):
    """A reused model and step (the full experts' path) gives each job exactly the run it
    would have had in a fresh process: same losses and final weights."""
    import tf_keras as keras

    def warm_start(model):  # sets every weight, as a reused job's warm start must
        keras.utils.set_random_seed(1)
        fresh = synthetic.job().build_model()
        for target, source in zip(model.variables, fresh.variables, strict=True):
            target.assign(source)

    def make(seed):
        base = synthetic.job()
        return dataclasses.replace(
            base,
            warm_start=warm_start,
            reuse_key="synthetic",
            dataset_fn=lambda ctx, b, s, start: synthetic.dataset_fn(ctx, b, s + seed, start),
        )

    config = synthetic.config(total_steps=3)
    compiled_jobs = loop.CompiledJobs()
    first = loop.train(make(0), config, tmp_path / "a", compiled_jobs=compiled_jobs)
    second = loop.train(make(5), config, tmp_path / "b", compiled_jobs=compiled_jobs)
    assert compiled_jobs.reused == 1
    alone = loop.train(make(5), config, tmp_path / "c")  # compiled afresh
    np.testing.assert_allclose(second["losses"], alone["losses"], rtol=1e-5)
    assert not np.allclose(first["losses"], second["losses"])
    for name, _ in tf.train.list_variables(work_tree.JobDir(tmp_path / "b").final_model):
        if name.startswith("model/"):
            np.testing.assert_allclose(
                tf.train.load_variable(work_tree.JobDir(tmp_path / "b").final_model, name),
                tf.train.load_variable(work_tree.JobDir(tmp_path / "c").final_model, name),
                rtol=1e-5,
                atol=1e-6,
            )

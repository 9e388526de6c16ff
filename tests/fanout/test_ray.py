"""Every fanning-out stage under ``--executor=ray`` on a local Ray bound to 127.0.0.1:
the upstream, its export and a transfer run give what the local executor gives; a
killed worker's job is retried and resumes; a job given twice runs once; B trains on
two Ray Train workers as on one device."""

import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

ray = pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install '.[ray]'")

import fanout  # noqa: E402
from experts import train, work_tree  # noqa: E402
from experts.configs import full as full_config  # noqa: E402
from experts.configs import upstream as upstream_config  # noqa: E402
from experts.training import loop  # noqa: E402
from hub_export import config as export_config  # noqa: E402
from hub_export import exporter  # noqa: E402
from tests import smoke_upstream  # noqa: E402
from tests.fanout import workers  # noqa: E402
from tests.training import synthetic  # noqa: E402
from vtab_eval import runner  # noqa: E402
from vtab_eval.configs import transfer  # noqa: E402
from vtab_eval.pool import hub_loader  # noqa: E402

EXPERTS = smoke_upstream.EXPERTS
TASK = 'mini_dsprites(predicted_attribute="label_x_position",num_classes=4,config="tiny")'
# Fields of a job's metrics that are timings, not results.
TIMINGS = ("seconds", "images_per_second", "per_second")


@pytest.fixture(scope="module")
def ray_executor():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    fanout.executors.start_ray(num_cpus=2)
    yield fanout.RayExecutor()
    ray.shutdown()


def _export(executor, upstream_dir: Path, hub_root: Path, data_dir: str) -> list[str]:
    config = export_config.get_config()
    config.update(workdir=str(upstream_dir), hub_root=str(hub_root), data_dir=data_dir,
                  kinds="baseline,full,adapter")  # fmt: skip
    return sorted(r["handle"] for r in exporter.export(config, executor=executor))


def _transfer(executor, hub_root: Path, root: Path) -> dict:
    config = transfer.get_config("smoke")
    config.update(pool=str(hub_root), suite=TASK, workdir=str(root / "transfer"),
                  data_dir=str(root / "tasks"), selectors="knn,baseline")  # fmt: skip
    runner.run(config, executor=executor)
    return runner.run_dir.RunDir(root / "transfer").task(TASK).result()


@pytest.fixture(scope="module")
def both(ray_executor, smoke_trained, smoke_data_dir, tmp_path_factory):
    """The smoke upstream, its export and a transfer run, each with the local executor
    (the upstream is the session's) and with Ray. The Ray jobs reserve 2 CPUs, so they
    run TensorFlow with 2 threads as this process does (``fanout.executors``): CPU
    kernels split their sums by thread, and with other thread counts results agree to
    float rounding only (about 1e-6 in weights after two steps)."""
    on_two = fanout.RayExecutor(resources=fanout.Resources(cpus=2))
    runs = {}
    for name, executor in (("local", fanout.LocalExecutor()), ("ray", on_two)):
        root = tmp_path_factory.mktemp(name)
        upstream_dir = smoke_trained[0] if name == "local" else root / "upstream"
        if name == "ray":
            everything = upstream_config.get_config("smoke")
            everything.update(workdir=str(upstream_dir), data_dir=smoke_data_dir)
            everything.update_from_flattened_dict(smoke_upstream.OVERRIDES)
            train.run(everything, executor)
        modules = _export(executor, upstream_dir, root / "hub", smoke_data_dir)
        runs[name] = {"upstream": upstream_dir, "hub": root / "hub", "modules": modules}
    # Both transfer runs on the local export: only the executor differs.
    for name, executor in (("local", fanout.LocalExecutor()), ("ray", on_two)):
        root = tmp_path_factory.mktemp(f"{name}_transfer")
        runs[name]["transfer"] = _transfer(executor, runs["local"]["hub"], root)
    return runs["local"], runs["ray"]


def _results(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not any(t in k for t in TIMINGS)}


def test_the_upstream_under_ray_equals_the_local_one(both):
    local, on_ray = both
    jobs = [("baseline", None), ("adapter", None), ("epn", None)] + [("full", e) for e in EXPERTS]
    for job, expert in jobs:
        a = work_tree.WorkTree(local["upstream"]).job(job, expert)
        b = work_tree.WorkTree(on_ray["upstream"]).job(job, expert)
        assert a.finished() and b.finished(), (job, expert)
        ma, mb = _results(a.metrics()), _results(b.metrics())
        assert ma.keys() == mb.keys()
        for key in ma:
            assert mb[key] == ma[key], (job, expert, key)
        ra, rb = tf.train.load_checkpoint(a.final_model), tf.train.load_checkpoint(b.final_model)
        for name, _ in tf.train.list_variables(a.final_model):
            if name.startswith("model/"):
                np.testing.assert_array_equal(rb.get_tensor(name), ra.get_tensor(name),
                                              err_msg=f"{job} {expert} {name}")  # fmt: skip


def test_the_export_under_ray_equals_the_local_one(both):
    local, on_ray = both
    # B, two full experts and two adapter experts.
    assert local["modules"] == on_ray["modules"] and len(local["modules"]) == 5
    images = np.random.default_rng(0).uniform(size=(4, 32, 32, 3)).astype(np.float32)
    for handle in local["modules"]:
        a = hub_loader.load(local["hub"] / handle)(images).numpy()
        b = hub_loader.load(on_ray["hub"] / handle)(images).numpy()
        np.testing.assert_array_equal(b, a, err_msg=handle)


def test_the_transfer_run_under_ray_equals_the_local_one(both):
    local, on_ray = both
    a, b = local["transfer"], on_ray["transfer"]
    assert a["methods"].keys() == b["methods"].keys() == {"knn", "baseline"}
    for method in a["methods"]:
        ma, mb = a["methods"][method], b["methods"][method]
        assert ma["pick"] == mb["pick"]
        assert mb["test_accuracies"] == ma["test_accuracies"]


def _node_address() -> str:
    return ray.util.get_node_ip_address()


def test_ray_workers_run_at_the_drivers_priority(ray_executor):
    # Ray's default (nice 15) starved its workers behind any other busy process.
    @ray.remote
    def niceness():
        return os.nice(0)

    assert ray.get(niceness.remote()) == os.nice(0)


def test_every_ray_process_started_here_binds_and_reports_loopback(ray_executor):
    psutil = pytest.importorskip("psutil", reason="the socket listing needs psutil")
    # A job on a worker of each reservation the tests use, so that workers exist. (Here,
    # after the transfer run, its 2-CPU worker is still alive and serves the second, and
    # the killed-worker test below starts on the 1-CPU worker the first one starts: each
    # new worker imports TensorFlow.)
    jobs = [fanout.Job("address", _node_address)]
    reported = ray_executor.map(jobs) + fanout.RayExecutor(resources=fanout.Resources(cpus=2)).map(
        jobs
    )
    assert reported == ["127.0.0.1", "127.0.0.1"]
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    started = {p.pid: p.name() for p in psutil.Process().children(recursive=True)}
    assert any("raylet" in name for name in started.values()), started
    bound = [
        (started[c.pid], c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.pid in started and (c.status == psutil.CONN_LISTEN or not c.raddr)
    ]
    assert bound, "no listening socket found among Ray's processes"
    loopback = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
    assert [b for b in bound if b[1] not in loopback] == [], bound


def test_a_killed_worker_is_retried_and_resumes_from_its_checkpoint(ray_executor, tmp_path):
    # Deterministic ops, so that the same run in the same kind of process is the same
    # to the bit: the comparison below is then exact on any CPU, whatever its thread
    # count or kernels, which would otherwise move the weights by float rounding.
    settings = dict(total_steps=6, checkpoint_every=2, log_every=1, deterministic=True)
    job = fanout.Job("killed once", workers.train_killed_once,
                     (str(tmp_path / "ray"), str(tmp_path / "attempts")), settings)  # fmt: skip
    [result] = ray_executor.map([job])
    attempts = (tmp_path / "attempts").read_text().split()
    assert len(attempts) == 2 and attempts[0] != attempts[1]  # two processes
    resumed_at = 6 - len(result["losses"])
    assert result["steps"] == 6 and resumed_at in (2, 4)
    # The same interruption, by an error after step `resumed_at`'s batch, and resume,
    # in a Ray worker of the same reservation (so TensorFlow's thread pools are the
    # same size): the retried job's model equals this one's.
    fail_after = resumed_at * synthetic.config().global_batch + 1
    reference = fanout.Job("interrupted", workers.train_interrupted_and_resumed,
                           (str(tmp_path / "reference"), fail_after), settings)  # fmt: skip
    ray_executor.map([reference])
    a = work_tree.JobDir(tmp_path / "reference")
    b = work_tree.JobDir(tmp_path / "ray")
    ra, rb = tf.train.load_checkpoint(a.final_model), tf.train.load_checkpoint(b.final_model)
    for name, _ in tf.train.list_variables(a.final_model):
        if name.startswith("model/"):
            np.testing.assert_array_equal(rb.get_tensor(name), ra.get_tensor(name), err_msg=name)
    # No partial artefact: only the job's own files (and the lock the dead attempt
    # held, which the OS released), no temporary final directory.
    names = sorted(p.name for p in b.path.iterdir())
    assert names == [".lock", "checkpoints", "final", "tensorboard"], names


def test_two_workers_given_the_same_job_train_it_once(both, ray_executor, smoke_data_dir):
    _, on_ray = both
    config = smoke_upstream.smoke(full_config, smoke_data_dir, on_ray["upstream"])
    config.data.experts = ("square",)
    config = train.resolved_config(config)
    job = fanout.Job("full square", train.train_alone, (config, "square"))
    results = ray_executor.map([job, job])
    assert sorted("losses" in r for r in results) == [False, True]  # one trained it
    jobdir = work_tree.WorkTree(on_ray["upstream"]).job("full", "square")
    assert jobdir.finished() and jobdir.metrics()["steps"] == 2


def test_a_jobs_error_is_raised_as_itself(ray_executor):
    assert ray_executor.map([fanout.Job(f"sq{i}", workers.square, (i,)) for i in range(3)]) == [
        0, 1, 4,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="a bad setting"):
        ray_executor.map([fanout.Job("fails", workers.fail, ("a bad setting",))])


def test_ray_train_two_workers_match_single_device(ray_executor, tmp_path):
    single = loop.train(synthetic.job(), synthetic.config(), tmp_path / "single")
    result = fanout.ray_train.run(workers.synthetic_multi_worker, (str(tmp_path / "mwms"),), 2)
    assert result["replicas"] == 2
    np.testing.assert_allclose(result["losses"], single["losses"], rtol=1e-4)
    assert work_tree.JobDir(tmp_path / "mwms").finished()


def test_a_job_no_node_can_host_is_refused_when_the_executor_starts(ray_executor):
    # One GPU more than the cluster has (none on a CPU machine): jobs would wait forever.
    gpus = ray.cluster_resources().get("GPU", 0) + 1
    with pytest.raises(RuntimeError, match=rf"^--job_gpus={gpus:g}: no node of the Ray cluster"):
        fanout.RayExecutor(resources=fanout.Resources(1, gpus))

"""The local executor and the work-directory lock, without Ray."""

import json
import multiprocessing
import os
import time

import pytest

import fanout
from fanout import executors, ray_train


def test_local_executor_runs_jobs_in_order_with_progress_lines():
    lines = []
    jobs = [fanout.Job(f"job{i}", pow, (i, 2)) for i in range(3)]
    assert fanout.LocalExecutor(lines.append).map(jobs, what="squares") == [0, 1, 4]
    assert [line.split(" (")[0] for line in lines] == [
        "squares 1/3 done: job0",
        "squares 2/3 done: job1",
        "squares 3/3 done: job2",
    ]
    assert lines[-1].endswith("eta 0s)")


def test_resolve_and_unknown_executor():
    local = fanout.LocalExecutor()
    assert fanout.resolve(local) is local
    assert fanout.resolve(None).in_process
    assert fanout.resolve(lambda: local) is local
    with pytest.raises(ValueError, match="unknown --executor='spark'; choose one of local, ray"):
        fanout.make_executor("spark")


def test_a_held_directory_is_busy_for_others(tmp_path):
    with fanout.hold(tmp_path):
        owner = (tmp_path / ".lock.owner").read_text()
        assert owner.startswith("pid ")
        # The same process's second FileLock object is a second holder to the OS lock.
        with pytest.raises(fanout.Busy, match=f"{tmp_path} is in use by pid"):
            with _in_child(tmp_path):
                pass
    assert not (tmp_path / ".lock.owner").exists()


class _in_child:
    """Tries the lock from another process (the OS lock is per open file, so a child
    process sees the parent's hold)."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            error = pool.apply(_try_hold, (str(self.path),))
        if error:
            raise fanout.Busy(error)

    def __exit__(self, *exc):
        return False


def _try_hold(path):
    try:
        with fanout.hold(path):
            return ""
    except fanout.Busy as error:
        return str(error)


def test_a_waiting_holder_gets_the_directory_once_it_is_free(tmp_path):
    context = multiprocessing.get_context("spawn")
    got = context.Queue()
    with fanout.hold(tmp_path):
        child = context.Process(target=_hold_and_time, args=(str(tmp_path), got))
        child.start()
        time.sleep(1.5)  # the child is waiting meanwhile
        released = time.time()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert got.get(timeout=5) >= released


def _hold_and_time(path, queue):
    with fanout.hold(path, wait=True, log=lambda m: None):
        queue.put(time.time())


def test_loopback_rewrites_every_address_and_keeps_ports(monkeypatch):
    monkeypatch.setenv(
        "TF_CONFIG",
        '{"cluster": {"worker": ["192.0.2.7:1234", "host-b:99"]}, '
        '"task": {"type": "worker", "index": 1}}',
    )
    ray_train.loopback_tf_config()
    config = json.loads(os.environ["TF_CONFIG"])
    assert config["cluster"]["worker"] == ["127.0.0.1:1234", "127.0.0.1:99"]
    assert config["task"] == {"type": "worker", "index": 1}


def test_ray_resources_become_task_options():
    options = executors.Resources(2, 1, 0.5).ray_options()
    assert {k: options[k] for k in ("num_cpus", "num_gpus", "memory")} == {
        "num_cpus": 2,
        "num_gpus": 1,
        "memory": 2**29,
    }
    assert "memory" not in executors.Resources().ray_options()


def test_a_ray_workers_thread_pools_follow_its_reservation():
    for cpus, threads in ((2, "2"), (0.5, "1"), (3.9, "3")):
        env = executors.Resources(cpus).ray_options()["runtime_env"]["env_vars"]
        assert env == dict.fromkeys(
            ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"), threads
        )


CPU_NODE = {"CPU": 2.0, "memory": 4 * 2**30}


def test_resources_no_node_offers_are_refused_naming_the_flag():
    # Ray would keep such jobs pending forever: --executor=ray --job_gpus=1 hung silently.
    with pytest.raises(RuntimeError) as error:
        executors.check_resources(executors.Resources(1, 1), [CPU_NODE, CPU_NODE])
    message = str(error.value)
    assert message.startswith("--job_gpus=1: no node of the Ray cluster offers what one job asks")
    assert "(1 CPUs, 1 GPUs, 0.0 GiB memory)" in message
    assert "2 node(s) with 4 CPUs, 0 GPUs, 8.0 GiB memory in all" in message
    with pytest.raises(RuntimeError, match=r"^--job_cpus=3, --job_memory_gb=5: "):
        executors.check_resources(executors.Resources(3, 0, 5), [CPU_NODE])
    # Each resource is somewhere, but no node has both: every asked flag is named.
    gpu_node = {"CPU": 1.0, "GPU": 1.0}
    with pytest.raises(RuntimeError, match=r"^--job_cpus=2, --job_gpus=1: "):
        executors.check_resources(executors.Resources(2, 1), [CPU_NODE, gpu_node])


def test_resources_one_node_offers_are_accepted():
    executors.check_resources(executors.Resources(2, 0, 4), [CPU_NODE])
    executors.check_resources(executors.Resources(1, 1), [CPU_NODE, {"CPU": 1.0, "GPU": 2.0}])
    executors.check_resources(executors.Resources(0, 0), [{}])


@pytest.mark.parametrize("gpus", [float("nan"), -1.0, float("inf")])
def test_resources_must_be_finite_and_non_negative(gpus):
    # --job_gpus=nan passed absl's lower bound.
    with pytest.raises(ValueError, match=rf"^--job_gpus={gpus}: must be a finite number >= 0"):
        executors.Resources(1, gpus)

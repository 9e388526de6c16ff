"""Shared test set-up: quiet TensorFlow, two logical CPU devices, deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tf_keras as keras  # noqa: E402

from fanout import distribute  # noqa: E402

# MirroredStrategy tests run the real multi-replica path over two logical CPUs; this
# must happen before TensorFlow executes its first op.
distribute.split_cpu(2)


@pytest.fixture(autouse=True)
def _seed():
    # Seeds Python, NumPy and TensorFlow together.
    keras.utils.set_random_seed(0)


@pytest.fixture(scope="session")
def smoke_data_dir(tmp_path_factory):
    """tests/smoke_upstream.py's upstream, built once per session."""
    from tests import smoke_upstream

    return smoke_upstream.prepare(tmp_path_factory.mktemp("smoke_upstream"))


@pytest.fixture(scope="session")
def smoke_trained(smoke_data_dir, tmp_path_factory):
    """(work tree, results) of the smoke upstream run in this process, once per session:
    the jobs tests read it, the fan-out tests compare a Ray run with it."""
    from tests import smoke_upstream

    workdir = tmp_path_factory.mktemp("smoke_runs")
    return workdir, smoke_upstream.train_all(smoke_data_dir, workdir)

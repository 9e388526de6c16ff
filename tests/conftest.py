"""Shared test set-up: quiet TensorFlow, two logical CPU devices, deterministic seeds."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tf_keras as keras  # noqa: E402

from fanout import distribute  # noqa: E402

# MirroredStrategy tests run the real multi-replica path over two logical CPUs; this
# must happen before TensorFlow executes its first op.
distribute.split_cpu(2)


# Test files whose assertions compare floating-point results computed along different
# paths (16-bit against float32, packed against separate, several devices against one,
# a reused step against a fresh one, an export against its source). Their tolerances
# must hold on any x86-64 CPU, so `make test` runs them a second time with one thread
# per pool and without oneDNN (`pytest -m numerics`): a tolerance tuned to one
# machine's kernels fails there rather than on a user's machine. A test of such a file
# that compares no floating-point result (a count, a shape, a dtype, a name, an error,
# values no kernel can change) is marked ``one_pass``: the second pass could not make
# it fail, so it runs once, with the rest of the suite. training/test_determinism.py is
# not here for that reason: it compares deterministic runs bit for bit, with no
# tolerance, and with one thread per pool every kernel is deterministic anyway.
NUMERICS = {
    "models/test_precision.py",
    "models/test_adapters.py",
    "models/test_resnet_v2.py",
    "training/test_precision.py",
    "training/test_loop.py",
    "hub_export/test_modules.py",
    "vtab_eval/test_features.py",
    "vtab_eval/test_finetune.py",
    "vtab_eval/test_precision.py",
}

# Self-contained files (no session fixture shared with the rest of the suite) that
# `make test` runs once, in the numerics process's first pass, not with the rest: the
# two processes run side by side and the rest is the longer, so this evens them out.
BESIDE_NUMERICS = {
    "training/test_determinism.py",
    "training/test_accelerator_bench.py",
    "vtab_eval/bench/test_accelerator.py",
}


def pytest_collection_modifyitems(config, items):
    tests = Path(__file__).parent
    for item in items:
        path = item.path.relative_to(tests).as_posix()
        if path in NUMERICS and not item.get_closest_marker("one_pass"):
            item.add_marker(pytest.mark.numerics)
        if path in BESIDE_NUMERICS:
            item.add_marker(pytest.mark.beside_numerics)


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

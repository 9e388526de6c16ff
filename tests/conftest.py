"""Shared test set-up: quiet TensorFlow, two logical CPU devices, deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tf_keras as keras  # noqa: E402

from vtab_eval import distribute  # noqa: E402

# MirroredStrategy tests run the real multi-replica path over two logical CPUs; this
# must happen before TensorFlow executes its first op.
distribute.split_cpu(2)


@pytest.fixture(autouse=True)
def _seed():
    # Seeds Python, NumPy and TensorFlow together.
    keras.utils.set_random_seed(0)

"""Upstream training is reproducible: the initial weights follow the config's seed, and
with ``train.deterministic`` two runs of one config end at the very same weights."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experts.models import resnet_v2
from experts.training import loop
from tests.data.conftest import make_folder, prepare_folder_builder
from tests.training import synthetic

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


def test_two_deterministic_runs_end_at_the_same_weights(data_dir, tmp_path):
    weights = []
    for run in ("a", "b"):
        out = tmp_path / f"{run}.npz"
        subprocess.run(
            [sys.executable, "-m", "tests.training.determinism_worker", data_dir,
             str(tmp_path / run), str(out)],
            cwd=REPO, check=True, capture_output=True,
        )  # fmt: skip
        with np.load(out) as saved:
            weights.append({k: saved[k] for k in saved.files})
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 10
    for name, value in weights[0].items():
        np.testing.assert_array_equal(value, weights[1][name], err_msg=name)

"""Every upstream job end to end on a tiny generated image-folder upstream."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from experts import train
from experts.configs import adapter_experts, baseline, epn, full_experts
from experts.data import upstream
from experts.data.builders import ImageFolderUpstream, ImageFolderUpstreamConfig
from experts.models import resnet_v2
from experts.training import loop
from tests.data.conftest import make_folder

EXPERTS = ("circle", "red", "square")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("upstream")
    manual = make_folder(str(root / "manual"))
    config = ImageFolderUpstreamConfig(
        name="jobs_test",
        validation_percent=25,
        experts=upstream.ExpertChoice(num_experts=3, min_images=1, max_overlap=0.9),
    )
    builder = ImageFolderUpstream(config=config, data_dir=str(root / "tfds"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual, try_download_gcs=False)
    )
    return str(root / "tfds")


def smoke(module, data_dir, workdir, **overrides):
    config = module.get_config("smoke")
    config.data.name, config.data.data_dir = "image_folder_upstream/jobs_test", data_dir
    config.data.experts = EXPERTS
    config.workdir, config.eval_batch = str(workdir), 16
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """B, then every other job, each for the smoke preset's 2 steps."""
    workdir = tmp_path_factory.mktemp("runs")
    results = {}
    for module in (baseline, full_experts, adapter_experts, epn):
        results.update(train.run(smoke(module, data_dir, workdir)))
    return workdir, results


def test_baseline_trains_and_reports_validation_metrics(trained):
    workdir, results = trained
    metrics = loop.read_metrics(workdir / "baseline")
    assert metrics["steps"] == 2 and metrics["images"] > 0
    assert set(metrics) >= {"loss", "top1", "prec1"}
    assert len(results[str(workdir / "baseline")]["losses"]) == 2


def test_each_full_expert_has_its_own_workdir_and_is_compared_with_b(trained):
    workdir, _ = trained
    for expert in EXPERTS:
        metrics = loop.read_metrics(workdir / "full" / expert)
        assert {"top1", "baseline_top1", "loss", "baseline_loss"} <= set(metrics)


def test_adapter_job_changes_adapter_variables_only(trained, data_dir):
    workdir, _ = trained
    nodes = len(
        upstream.load_info(
            tfds.builder("image_folder_upstream/jobs_test", data_dir=data_dir)
        ).hierarchy
    )
    b = resnet_v2.ResNetV2("r14x0.125", nodes).build_for()
    tf.train.Checkpoint(model=b).read(loop.final_model_path(workdir / "baseline")).assert_consumed()
    adapted = resnet_v2.ResNetV2("r14x0.125", nodes, num_experts=len(EXPERTS)).build_for()
    tf.train.Checkpoint(model=adapted).read(
        loop.final_model_path(workdir / "adapters")
    ).assert_consumed()
    for src, dst in zip(b.weights, adapted.backbone_and_head_weights, strict=True):
        np.testing.assert_array_equal(src.numpy(), dst.numpy(), err_msg=dst.name)
    last_convs = [v for v in adapted.adapter_variables if "a2/conv1x1" in v.name]
    assert all(np.abs(v.numpy()).max() > 0 for v in last_convs)  # moved off zero
    assert {f"{e}/top1" for e in EXPERTS} <= set(loop.read_metrics(workdir / "adapters"))


def test_epn_predicts_experts(trained):
    workdir, _ = trained
    metrics = loop.read_metrics(workdir / "epn")
    assert 0 <= metrics["prec1"] <= 1 and metrics["images"] > 0


def test_rerun_skips_finished_jobs(trained, data_dir, capsys):
    workdir, _ = trained
    train.run(smoke(full_experts, data_dir, workdir, expert="red"))
    assert "already finished" in capsys.readouterr().out


def test_bad_expert_and_missing_baseline_are_clear_errors(data_dir, tmp_path):
    with pytest.raises(ValueError, match="--config.expert='dog' is not a hierarchy node"):
        train.run(smoke(full_experts, data_dir, tmp_path, expert="dog"))
    with pytest.raises(FileNotFoundError, match="has no finished run; train that job first"):
        train.run(smoke(epn, data_dir, tmp_path))

"""Every upstream job end to end on a tiny generated image-folder upstream."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorboard.backend.event_processing import event_accumulator

from experts import train, work_tree
from experts.configs import baseline, epn, full
from experts.data import upstream
from experts.models import resnet_v2
from tests import smoke_upstream

EXPERTS = smoke_upstream.EXPERTS
smoke = smoke_upstream.smoke


@pytest.fixture(scope="module")
def data_dir(smoke_data_dir):
    return smoke_data_dir


@pytest.fixture(scope="module")
def trained(smoke_trained):
    """B, then every other job, each for the smoke preset's 2 steps."""
    return smoke_trained


def test_baseline_trains_and_reports_validation_metrics(trained):
    workdir, results = trained
    metrics = work_tree.JobDir(workdir / "baseline").metrics()
    assert metrics["steps"] == 2 and metrics["images"] > 0
    assert set(metrics) >= {"loss", "top1", "prec1"}
    assert len(results[str(workdir / "baseline")]["losses"]) == 2


def test_each_full_expert_has_its_own_workdir_and_is_compared_with_b(trained):
    workdir, _ = trained
    for expert in EXPERTS:
        metrics = work_tree.JobDir(workdir / "full" / expert).metrics()
        assert {"top1", "baseline_top1", "loss", "baseline_loss"} <= set(metrics)


def test_adapter_job_changes_adapter_variables_only(trained, data_dir):
    workdir, _ = trained
    nodes = len(
        upstream.load_info(
            tfds.builder("image_folder_upstream/jobs_test", data_dir=data_dir)
        ).hierarchy
    )
    b = resnet_v2.ResNetV2("r14x0.125", nodes).build_for()
    tf.train.Checkpoint(model=b).read(
        work_tree.JobDir(workdir / "baseline").final_model
    ).assert_consumed()
    adapted = resnet_v2.ResNetV2(
        "r14x0.125", nodes, num_experts=len(EXPERTS), expert_head_bias=True
    ).build_for()
    tf.train.Checkpoint(model=adapted).read(
        work_tree.JobDir(workdir / "adapter").final_model
    ).assert_consumed()
    for src, dst in zip(b.weights, adapted.backbone_and_head_weights, strict=True):
        np.testing.assert_array_equal(src.numpy(), dst.numpy(), err_msg=dst.name)
    last_convs = [v for v in adapted.adapter_variables if "a2/conv1x1" in v.name]
    assert all(np.abs(v.numpy()).max() > 0 for v in last_convs)  # moved off zero
    assert np.abs(adapted.expert_bias.bias.numpy()).max() > 0  # each expert's head bias too
    assert {f"{e}/top1" for e in EXPERTS} <= set(work_tree.JobDir(workdir / "adapter").metrics())


def test_adapter_job_logs_each_blocks_adapter_scale(trained):
    workdir, _ = trained
    events = event_accumulator.EventAccumulator(
        str(work_tree.JobDir(workdir / "adapter").tensorboard)
    )
    events.Reload()
    for block in range(1, 5):
        ratios = events.Tensors(f"train/adapter_rms_ratio/block{block}")
        assert ratios and all(np.isfinite(tf.make_ndarray(r.tensor_proto)) for r in ratios)


def test_epn_predicts_experts(trained):
    workdir, _ = trained
    metrics = work_tree.JobDir(workdir / "epn").metrics()
    assert 0 <= metrics["prec1"] <= 1 and metrics["images"] > 0


def test_rerun_skips_finished_jobs(trained, data_dir, capsys):
    workdir, _ = trained
    train.run(smoke(full, data_dir, workdir, expert="red"))
    assert "already finished" in capsys.readouterr().out


def test_bad_expert_and_missing_baseline_are_clear_errors(data_dir, tmp_path):
    with pytest.raises(ValueError, match="--config.expert='dog' is not a hierarchy node"):
        train.run(smoke(full, data_dir, tmp_path, expert="dog"))
    with pytest.raises(FileNotFoundError, match="has no finished run; train that job first"):
        train.run(smoke(epn, data_dir, tmp_path))


def test_each_job_records_the_config_it_was_started_with(trained):
    workdir, _ = trained
    tree = work_tree.WorkTree(workdir)
    assert tree.baseline.config()["data"]["experts"] == []  # B trains on everything
    assert tree.job("full", "red").config()["data"]["experts"] == ["red"]
    assert tree.job("adapter").config()["data"]["experts"] == list(EXPERTS)
    assert tree.job("epn").config()["train"]["total_steps"] == 2
    assert tree.full_experts() == sorted(EXPERTS)


def test_a_rerun_with_a_changed_setting_is_refused_naming_it(trained, data_dir):
    workdir, _ = trained
    before = work_tree.JobDir(workdir / "baseline").metrics()
    changed = smoke(baseline, data_dir, workdir)
    changed.model.size = "r26x0.25"
    with pytest.raises(work_tree.ConfigChanged, match=r"^model.size is 'r26x0.25' but .*"):
        train.run(changed)
    # Speed-only settings may change; the finished job is kept as it was.
    train.run(smoke(baseline, data_dir, workdir, eval_batch=4))
    assert work_tree.JobDir(workdir / "baseline").metrics() == before


def test_restart_trains_a_job_afresh_under_its_new_config(trained, data_dir, tmp_path):
    workdir, _ = trained
    copy = tmp_path / "runs"
    copy.mkdir()
    (copy / "baseline").symlink_to(workdir / "baseline")  # read-only use: B for the warm start
    train.run(smoke(epn, data_dir, copy, baseline_workdir=str(workdir / "baseline")))
    steps = smoke(epn, data_dir, copy, baseline_workdir=str(workdir / "baseline"))
    steps.train.total_steps = 3
    with pytest.raises(work_tree.ConfigChanged, match="train.total_steps is 3"):
        train.run(steps)
    steps.restart = True
    train.run(steps)
    assert work_tree.JobDir(copy / "epn").metrics()["steps"] == 3
    assert work_tree.JobDir(copy / "epn").config()["train"]["total_steps"] == 3


def test_the_top_rule_chooses_experts_at_training_time(data_dir):
    from experts import jobs
    from experts.data import augment

    config = smoke(baseline, data_dir, "unused", eval_batch=16)
    config.data.experts = ()
    config.data.choice.update(
        rule="top", num_experts=2, min_images=0, max_overlap=1.0, exclude_roots=False
    )
    data = jobs.Upstream.open(config)
    assert data.experts[0] == "thing" and len(data.experts) == 2  # the root kept, as the paper
    assert data.augment == augment.GLYPHS  # the smoke preset's own setting
    config.data.choice.rule = "recorded"
    assert jobs.Upstream.open(config).experts == data.info.experts


def test_the_adapter_jobs_warm_start_sets_the_scales_from_bs_stream(trained, data_dir):
    from experts import jobs
    from experts.configs import adapter

    workdir, _ = trained
    config = smoke(adapter, data_dir, workdir, baseline_workdir=str(workdir / "baseline"))
    config.model.adapter_scale = True
    data = jobs.Upstream.open(config)
    job = jobs.adapter_job(config, data)
    model = job.build_model()
    job.warm_start(model)
    scales = np.array([a.scale.numpy() for a in model.adapters])  # [blocks, experts]
    assert np.all(scales == scales[:, :1]) and np.all(scales > 0)
    mix = data.read(
        jobs.pipelines.expert_mix, list(EXPERTS), split="train", batch=jobs.SCALE_IMAGES,
        training=False,
    )  # fmt: skip
    batch = next(iter(mix))
    ratios = model.adapter_rms_ratios(batch["image"], batch["expert"]).numpy()
    np.testing.assert_array_equal(ratios, 0.0)  # still B: every adapter is the identity
    reference = jobs.sigmoid_model(config, data.num_nodes, num_experts=len(EXPERTS))
    reference.copy_backbone_from(data.baseline(config))
    np.testing.assert_allclose(
        reference.calibrate_adapter_scales(batch["image"], batch["expert"]), scales[:, 0], rtol=1e-5
    )

"""Export reads an adapter job that trained output scales, or adapters of another
bottleneck width, and its modules (the packed single model and one module per expert)
carry them."""

import numpy as np
import tensorflow as tf

from experts import work_tree
from experts.models import resnet_v2
from hub_export import modules, trained
from tests.hub_export.conftest import EXPERTS, IMAGE_SIZE, TINY, make_info

TOL = {"rtol": 1e-5, "atol": 1e-5}


def scaled_source(nodes: int) -> resnet_v2.ResNetV2:
    source = resnet_v2.ResNetV2(
        TINY, nodes, num_experts=len(EXPERTS), expert_head_bias=True, adapter_scale=True
    ).build_for(IMAGE_SIZE)
    rng = np.random.default_rng(3)
    for v in source.weights:
        v.assign(v + 0.1 * rng.standard_normal(v.shape).astype(np.float32))
    for b, adapter in enumerate(source.adapters):  # experts with distinct scales
        adapter.scale.assign([2.0 + b, 0.5])
    return source


def test_a_scaled_adapter_job_exports_its_scales_in_the_packed_and_single_modules(tmp_path):
    info = make_info()
    nodes = len(info.hierarchy)
    source = scaled_source(nodes)
    jobdir = work_tree.JobDir(tmp_path / "upstream" / "adapter")
    model_config = {"size": TINY, "image_size": IMAGE_SIZE, "expert_head_bias": True}
    jobdir.start(
        {
            "job": "adapter",
            "model": {**model_config, "adapter_scale": True},
            "data": {"experts": list(EXPERTS)},
        }
    )
    jobdir.write_final(source, {"steps": 1})
    tree = trained.TrainedUpstream(
        tmp_path / "upstream", "toy_upstream/32px", info, EXPERTS, TINY, IMAGE_SIZE
    )
    restored = tree.restore(nodes, len(EXPERTS), "adapter")
    assert restored.adapter_scale
    for mine, theirs in zip(restored.adapters, source.adapters, strict=True):
        np.testing.assert_array_equal(mine.scale.numpy(), theirs.scale.numpy())

    modules.save(modules.packed_adapters(restored), tmp_path / "packed")
    template = modules.FeatureVectorTemplate(
        *modules.FeatureVectorTemplate.key(restored, adapter=True)
    )
    modules.save(template.fill(restored, 1), tmp_path / "expert1")
    packed = tf.saved_model.load(str(tmp_path / "packed"))
    single = tf.saved_model.load(str(tmp_path / "expert1"))
    x = tf.random.uniform([2, IMAGE_SIZE, IMAGE_SIZE, 3], seed=4)
    # The source runs as a graph, like the modules (oneDNN's eager kernels differ).
    features_of = tf.function(lambda images, e: source(images, expert=e)["pre_logits"])
    wanted = [features_of(x, tf.constant(e)).numpy() for e in range(len(EXPERTS))]
    for e, features in enumerate(wanted):
        np.testing.assert_allclose(packed(x, e).numpy(), features, **TOL)
    np.testing.assert_allclose(single(x).numpy(), wanted[1], **TOL)
    # Without its scales the expert would differ, so the comparisons above could fail.
    unscaled = resnet_v2.ResNetV2(TINY, nodes, num_experts=len(EXPERTS)).build_for(IMAGE_SIZE)
    unscaled.copy_backbone_from(source)
    for mine, theirs in zip(unscaled.adapters, source.adapters, strict=True):
        for dst, src in zip(mine.weights, theirs.weights, strict=False):  # the scale is last
            dst.assign(src)
    assert not np.allclose(unscaled(x, expert=1)["pre_logits"].numpy(), wanted[1], atol=1e-3)


def test_templates_for_scaled_and_unscaled_adapters_are_distinct():
    plain = resnet_v2.ResNetV2(TINY, 0, num_experts=2)
    scaled = resnet_v2.ResNetV2(TINY, 0, num_experts=2, adapter_scale=True)
    baseline = resnet_v2.ResNetV2(TINY, 0)
    key = modules.FeatureVectorTemplate.key
    assert key(plain, adapter=True) != key(scaled, adapter=True)
    assert key(baseline)[3] is False


def test_a_wide_adapter_job_exports_its_width(tmp_path):
    # A job recorded with another bottleneck width restores into adapters of that width,
    # and its single-expert module computes what the source's expert does.
    info = make_info()
    nodes = len(info.hierarchy)
    source = resnet_v2.ResNetV2(TINY, nodes, num_experts=len(EXPERTS), adapter_width=1.0)
    source.build_for(IMAGE_SIZE)
    rng = np.random.default_rng(5)
    for v in source.weights:
        v.assign(v + 0.1 * rng.standard_normal(v.shape).astype(np.float32))
    jobdir = work_tree.JobDir(tmp_path / "upstream" / "adapter")
    model = {"size": TINY, "image_size": IMAGE_SIZE, "adapter_width": 1.0}
    jobdir.start({"job": "adapter", "model": model, "data": {"experts": list(EXPERTS)}})
    jobdir.write_final(source, {"steps": 1})
    tree = trained.TrainedUpstream(
        tmp_path / "upstream", "toy_upstream/32px", info, EXPERTS, TINY, IMAGE_SIZE
    )
    restored = tree.restore(nodes, len(EXPERTS), "adapter")
    assert [a.hidden for a in restored.adapters] == [a.channels for a in restored.adapters]
    template = modules.FeatureVectorTemplate(
        *modules.FeatureVectorTemplate.key(restored, adapter=True)
    )
    modules.save(template.fill(restored, 1), tmp_path / "expert1")
    single = tf.saved_model.load(str(tmp_path / "expert1"))
    x = tf.random.uniform([2, IMAGE_SIZE, IMAGE_SIZE, 3], seed=6)
    features_of = tf.function(lambda images: source(images, expert=tf.constant(1))["pre_logits"])
    np.testing.assert_allclose(single(x).numpy(), features_of(x).numpy(), **TOL)
    paper_width = resnet_v2.ResNetV2(TINY, 0, num_experts=2)
    key = modules.FeatureVectorTemplate.key
    assert key(paper_width, adapter=True) != key(restored, adapter=True)

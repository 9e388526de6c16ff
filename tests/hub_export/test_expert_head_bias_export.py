"""Export reads an adapter job that trained a head bias per expert; its feature
modules are the adapters' alone."""

import numpy as np
import tensorflow as tf

from experts import work_tree
from experts.models import resnet_v2
from hub_export import modules, trained
from tests.hub_export.conftest import EXPERTS, IMAGE_SIZE, TINY, make_info


def test_an_adapter_job_with_head_biases_is_restored_and_exported_without_them(tmp_path):
    info = make_info()
    nodes = len(info.hierarchy)
    source = resnet_v2.ResNetV2(
        TINY, nodes, num_experts=len(EXPERTS), expert_head_bias=True
    ).build_for(IMAGE_SIZE)
    for v in source.weights:
        v.assign(v + tf.random.normal(v.shape, stddev=0.1, seed=3))
    jobdir = work_tree.JobDir(tmp_path / "adapter")
    model_config = {"size": TINY, "image_size": IMAGE_SIZE, "expert_head_bias": True}
    jobdir.start({"job": "adapter", "model": model_config, "data": {"experts": list(EXPERTS)}})
    jobdir.write_final(source, {"steps": 1})
    tree = trained.TrainedUpstream(tmp_path, "toy_upstream/32px", info, EXPERTS, TINY, IMAGE_SIZE)
    restored = tree.restore(nodes, len(EXPERTS), "adapter")
    np.testing.assert_array_equal(restored.expert_bias.bias.numpy(), source.expert_bias.bias)
    x = tf.random.uniform([2, IMAGE_SIZE, IMAGE_SIZE, 3], seed=4)
    features = modules.headless(restored.single_expert(1))(x, expert=0)["pre_logits"]
    np.testing.assert_allclose(features, source(x, expert=1)["pre_logits"], atol=1e-5)

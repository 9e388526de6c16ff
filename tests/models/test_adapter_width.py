"""The adapters' bottleneck width: k = width * c channels, the identity at first
whatever the width, kept by single experts and by Keras' config."""

import numpy as np
import pytest
import tensorflow as tf

from experts.models import adapters, resnet_v2

TINY = "r14x0.125"


def test_the_width_sets_the_bottleneck_channels():
    layer = adapters.MultiAdapter(2, 16, width=1.5)
    layer.build([None, 4, 4, 16])
    assert layer.hidden == 24
    assert layer.conv1_kernel.shape == (2, 16, 24) and layer.conv2_kernel.shape == (2, 24, 16)
    assert adapters.MultiAdapter(2, 16).hidden == 8  # the paper's c / 2


@pytest.mark.parametrize("width", [0.3, 1e-3])
def test_a_width_giving_no_whole_bottleneck_is_one_line(width):
    with pytest.raises(ValueError, match=f"adapter width {width} of 16 input channels") as error:
        adapters.MultiAdapter(2, 16, width=width)
    assert "\n" not in str(error.value)


def test_a_wide_model_starts_as_b_and_its_single_expert_keeps_the_width():
    baseline = resnet_v2.ResNetV2(TINY, num_classes=5).build_for(32)
    wide = resnet_v2.ResNetV2(TINY, num_classes=5, num_experts=3, adapter_width=2.0)
    wide.build_for(32)
    wide.copy_backbone_from(baseline)
    x = tf.random.uniform([2, 32, 32, 3], seed=1)
    # A2's kernel starts at zero: the adapter adds exactly nothing.
    np.testing.assert_array_equal(wide(x, expert=1)["logits"], baseline(x)["logits"])
    for layer in wide.adapters:
        assert layer.hidden == 2 * layer.channels
    rng = np.random.default_rng(0)
    for v in wide.adapter_variables:
        v.assign(v + 0.1 * rng.standard_normal(v.shape).astype(np.float32))
    single = wide.single_expert(2)
    assert single.adapter_width == 2.0 and single.get_config()["adapter_width"] == 2.0
    # The same weights and operations; float32 rounding apart (a kernel library may
    # order a sum differently for another model's tensors).
    np.testing.assert_allclose(
        single(x, expert=0)["logits"], wide(x, expert=2)["logits"], rtol=1e-5, atol=1e-5
    )

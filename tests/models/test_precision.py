"""Mixed precision in the model: what computes in 16 bits, what stays float32, and how
far the outputs move from float32 with the same weights.

Tolerances are relative L2 errors, ||mixed - float32|| / ||float32||, in units of the
compute dtype's unit roundoff u (2^-8 for bfloat16, 2^-11 for float16):

* one weight-standardised convolution rounds its input, its standardised kernel and its
  output once each (accumulation is float32), so it stays within 3u;
* a whole network compounds its layers' roundings, and a randomly initialised
  ResNet-v2 amplifies a perturbation by about 1.4x per unit (measured stage by stage
  at r26x0.25: 0.3% after the root convolution, 7% after the eighth unit in bfloat16).
  The r14x0.125 used here (a root and four units) measured 27u-45u in bfloat16 and
  10u-17u in float16 over four seeds, so the bound is 64u: generous for rounding,
  far below what a float32 path computed in 16 bits costs (the layer tests below).
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from experts.models import bit_layers, resnet_v2

TINY = "r14x0.125"
MIXED = ["mixed_bfloat16", "mixed_float16"]
UNIT_ROUNDOFF = {"mixed_bfloat16": 2.0**-8, "mixed_float16": 2.0**-11}


def relative_error(value, reference):
    value, reference = np.asarray(value, np.float64), np.asarray(reference, np.float64)
    return np.linalg.norm(value - reference) / np.linalg.norm(reference)


def copy_weights(source, target):
    for src, dst in zip(source.weights, target.weights, strict=True):
        assert src.name == dst.name
        dst.assign(src)


@pytest.fixture(autouse=True)
def _global_policy_untouched():
    # Precision is per model: nothing here (or in the code under test) may set the
    # process-wide policy, which every later test's layers would inherit.
    yield
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize("policy", MIXED)
def test_outputs_agree_with_float32_with_the_same_weights(policy):
    reference = resnet_v2.ResNetV2(TINY, num_classes=10).build_for()
    # A non-zero head, so the logits carry the features' error.
    reference.head.kernel.assign(tf.random.normal(reference.head.kernel.shape, stddev=0.05))
    mixed = resnet_v2.ResNetV2(TINY, num_classes=10, dtype=policy).build_for()
    copy_weights(reference, mixed)
    images = tf.random.stateless_uniform([4, 32, 32, 3], seed=[0, 1])
    expected, got = reference(images), mixed(images)
    for key in ("pre_logits", "logits"):
        assert got[key].dtype == tf.float32
        error = relative_error(got[key], expected[key])
        assert 0 < error < 64 * UNIT_ROUNDOFF[policy], (key, error)


@pytest.mark.one_pass
@pytest.mark.parametrize("policy", MIXED)
def test_variables_norms_and_head_stay_float32(policy):
    model = resnet_v2.ResNetV2(TINY, num_classes=3, num_experts=2, dtype=policy).build_for()
    # Checkpoints, warm starts and exports see float32 variables in every precision,
    # and none is an autocasting wrapper that reads as 16 bits inside a layer.
    assert {v.dtype for v in model.weights} == {tf.float32}
    assert not [v for v in model.weights if hasattr(v, "true_dtype")]
    layers = list(model._flatten_layers(include_self=False))
    norms = [la for la in layers if isinstance(la, keras.layers.GroupNormalization)]
    assert norms and {la.compute_dtype for la in norms} == {"float32"}
    convs = [la for la in layers if isinstance(la, bit_layers.StandardizedConv2D)]
    assert convs and {la.compute_dtype for la in convs} == {policy.split("_")[1]}
    assert model.head.compute_dtype == "float32"
    unit = model.blocks[0][0]
    x = tf.cast(tf.random.uniform([2, 8, 8, unit.in_channels]), unit.compute_dtype)
    assert unit.norm_a(x).dtype == tf.float32  # statistics taken in float32
    assert unit(x).dtype == unit.compute_dtype  # the residual stream in 16 bits


@pytest.mark.parametrize("policy", MIXED)
def test_weight_standardisation_reads_the_float32_kernel(policy):
    """A kernel far from zero mean: standardised from its float32 value, the 16-bit
    convolution matches float32 within its three roundings; standardised after Keras'
    cast to 16 bits (the stock Conv2D path), the spread would drown in the mean's
    rounding (relative error above 1 at this shift)."""
    x = tf.random.uniform([2, 12, 12, 16])
    reference = bit_layers.StandardizedConv2D(8, 3, use_bias=False)
    mixed = bit_layers.StandardizedConv2D(8, 3, use_bias=False, dtype=policy)
    reference(x), mixed(x)
    reference.kernel.assign(reference.kernel + 10.0)
    mixed.kernel.assign(reference.kernel)
    error = relative_error(tf.cast(mixed(x), tf.float32), reference(x))
    assert error < 3 * UNIT_ROUNDOFF[policy]


def test_adapter_norms_run_in_float32_and_match():
    reference = resnet_v2.ResNetV2(TINY, num_classes=0, num_experts=2).build_for()
    mixed = resnet_v2.ResNetV2(TINY, num_classes=0, num_experts=2, dtype="mixed_float16")
    copy_weights(reference, mixed.build_for())
    for model in (reference, mixed):  # non-identity adapters
        for v in model.adapter_variables:
            if "a2/conv1x1" in v.name:
                v.assign(0.1 * tf.random.stateless_normal(v.shape, seed=[1, 2]))
    images = tf.random.stateless_uniform([4, 32, 32, 3], seed=[2, 3])
    expert = tf.constant([0, 1, 1, 0])
    got = mixed(images, expert=expert)["pre_logits"]
    expected = reference(images, expert=expert)["pre_logits"]
    assert relative_error(got, expected) < 64 * UNIT_ROUNDOFF["mixed_float16"]


@pytest.mark.one_pass
def test_precision_round_trips_through_config_and_single_expert():
    model = resnet_v2.ResNetV2(TINY, 3, num_experts=2, dtype="mixed_bfloat16").build_for()
    assert resnet_v2.ResNetV2.from_config(model.get_config()).dtype_policy.name == "mixed_bfloat16"
    assert model.single_expert(1).dtype_policy.name == "mixed_bfloat16"
    assert resnet_v2.ResNetV2(TINY).dtype_policy.name == "float32"

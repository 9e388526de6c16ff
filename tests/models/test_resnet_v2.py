import numpy as np
import pytest
import tensorflow as tf

from experts.models import bit_layers, resnet_v2

TINY = "r14x0.125"


def count(variables):
    return sum(v.shape.num_elements() for v in variables)


@pytest.mark.one_pass
@pytest.mark.parametrize("shape", [(2, 32, 32), (1, 48, 48), (3, 40, 56), (1, 224, 224)])
def test_forward_shapes_at_several_sizes(shape):
    model = resnet_v2.ResNetV2(TINY, num_classes=7)
    out = model(tf.random.uniform(shape + (3,)))
    assert set(out) == {"pre_logits", "logits"}
    assert out["pre_logits"].shape == (shape[0], model.feature_dim)
    assert out["logits"].shape == (shape[0], 7)
    assert out["pre_logits"].dtype == tf.float32


@pytest.mark.one_pass
def test_backbone_without_head_returns_only_pre_logits():
    out = resnet_v2.ResNetV2(TINY)(tf.zeros([2, 32, 32, 3]))
    assert list(out) == ["pre_logits"]


@pytest.mark.one_pass
def test_head_is_zero_initialised():
    out = resnet_v2.ResNetV2(TINY, num_classes=5)(tf.random.uniform([2, 32, 32, 3]))
    np.testing.assert_array_equal(out["logits"].numpy(), 0.0)
    assert np.abs(out["pre_logits"].numpy()).sum() > 0


@pytest.mark.one_pass
def test_r50x1_backbone_parameter_count_matches_bit():
    model = resnet_v2.ResNetV2("r50x1").build_for(32)
    assert count(model.weights) == 23_500_352
    assert model.feature_dim == 2048
    with_head = resnet_v2.ResNetV2("r50x1", num_classes=1000).build_for(32)
    assert count(with_head.weights) == 23_500_352 + 2048 * 1000 + 1000


@pytest.mark.one_pass
@pytest.mark.parametrize(
    "size,params,dim",
    [("r26x0.25", 877_264, 512), ("r14x0.125", 127_432, 256)],
)
def test_small_sizes_parameter_counts(size, params, dim):
    model = resnet_v2.ResNetV2(size).build_for(32)
    assert (count(model.weights), model.feature_dim) == (params, dim)


@pytest.mark.one_pass
def test_group_norm_is_bits():
    model = resnet_v2.ResNetV2("r50x1").build_for(32)
    norms = [la for la in model._flatten_layers() if "GroupNormalization" in type(la).__name__]
    assert len(norms) == 3 * 16 + 1
    assert {(n.groups, n.epsilon) for n in norms} == {(32, 1e-5)}


def test_standardized_conv_is_invariant_to_kernel_scale_and_shift():
    conv = bit_layers.StandardizedConv2D(4, 3, use_bias=False)
    x = tf.random.normal([2, 9, 9, 3])
    y = conv(x)
    kernel = conv.kernel.numpy()
    conv.kernel.assign(3.0 * kernel + 0.7)
    np.testing.assert_allclose(conv(x).numpy(), y.numpy(), atol=1e-4)
    mean = kernel.mean(axis=(0, 1, 2), keepdims=True)
    std = kernel.std(axis=(0, 1, 2), keepdims=True)
    expected = tf.nn.conv2d(x, (kernel - mean) / std, 1, "VALID")
    np.testing.assert_allclose(y.numpy(), expected.numpy(), atol=1e-4)


def _reference_unit(unit, x):
    """BiT's pre-activation bottleneck written out with raw ops and the unit's weights."""

    def gn(layer, h):
        b, hh, w, c = h.shape
        g = tf.reshape(h, [b, hh, w, layer.groups, c // layer.groups])
        mean, var = tf.nn.moments(g, [1, 2, 4], keepdims=True)
        g = tf.reshape((g - mean) / tf.sqrt(var + 1e-5), h.shape)
        return g * layer.gamma + layer.beta

    def conv(layer, h, stride, pad):
        k = layer.kernel
        mean, var = tf.nn.moments(k, [0, 1, 2], keepdims=True)
        h = tf.pad(h, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        return tf.nn.conv2d(h, (k - mean) / tf.sqrt(var + 1e-10), stride, "VALID")

    pre = tf.nn.relu(gn(unit.norm_a, x))
    shortcut = conv(unit.proj, pre, unit.stride, 0) if unit.proj is not None else x
    h = conv(unit.conv_a, pre, 1, 0)
    h = conv(unit.conv_b, tf.nn.relu(gn(unit.norm_b, h)), unit.stride, 1)
    h = conv(unit.conv_c, tf.nn.relu(gn(unit.norm_c, h)), 1, 0)
    return h + shortcut


@pytest.mark.parametrize("stride,in_channels", [(1, 64), (2, 64), (1, 32)])
def test_bottleneck_unit_matches_bit_reference(stride, in_channels):
    unit = bit_layers.BottleneckUnitV2(16, in_channels, stride)
    x = tf.random.normal([2, 8, 8, in_channels])
    y = unit(x)
    for w in unit.weights:  # non-trivial norms, so that their placement matters
        w.assign(w + tf.random.normal(w.shape, stddev=0.3))
    y = unit(x)
    assert (unit.proj is not None) == (stride > 1 or in_channels != 64)
    assert y.shape == (2, 8 // stride, 8 // stride, 64)
    np.testing.assert_allclose(y.numpy(), _reference_unit(unit, x).numpy(), atol=1e-4)


@pytest.mark.one_pass
def test_root_is_conv_then_pool_without_norm():
    model = resnet_v2.ResNetV2("r50x1").build_for(32)
    names = [v.name for v in model.weights]
    assert names[0] == "resnet/root_block/standardized_conv2d/kernel:0"
    assert names[1].startswith("resnet/block1/unit01/a/group_norm")
    # 7x7/2 conv then 3x3/2 pool: 64 px -> 16 px before block 1.
    x = tf.zeros([1, 64, 64, 3])
    root = model.root_pool(model.root_pool_pad(model.root_conv(model.root_pad(x))))
    assert root.shape == (1, 16, 16, 64)


def test_inputs_in_unit_range_are_mapped_to_bits_range():
    model = resnet_v2.ResNetV2(TINY).build_for(32)
    # A weight-standardised kernel sums to zero, and the root pads with zeros. So a
    # constant image gives an all-zero network iff that constant maps to 0: the model
    # must map [0, 1] to [-1, 1], i.e. 0.5 to 0.
    mid = model(tf.fill([1, 32, 32, 3], 0.5))["pre_logits"].numpy()
    off = model(tf.fill([1, 32, 32, 3], 0.3))["pre_logits"].numpy()
    np.testing.assert_allclose(mid, 0.0, atol=1e-6)
    assert np.abs(off).max() > 1e-3


@pytest.mark.one_pass
def test_unknown_size_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown ResNet-v2 size 'r51x1'"):
        resnet_v2.ResNetV2("r51x1")


def test_serialisation_round_trip(tmp_path):
    model = resnet_v2.ResNetV2(TINY, num_classes=3).build_for(32)
    for w in model.weights:
        w.assign(tf.random.normal(w.shape, stddev=0.1))
    x = tf.random.uniform([2, 32, 32, 3])
    expected = model(x)
    model.save_weights(str(tmp_path / "ckpt"))
    clone = resnet_v2.ResNetV2.from_config(model.get_config()).build_for(32)
    clone.load_weights(str(tmp_path / "ckpt")).assert_consumed()
    for key in expected:
        np.testing.assert_allclose(clone(x)[key].numpy(), expected[key].numpy(), atol=1e-6)


@pytest.mark.one_pass
def test_sigmoid_head_can_start_at_its_prior():
    model = resnet_v2.ResNetV2(TINY, num_classes=5, head_bias_init=-3.0)
    logits = model(tf.random.uniform([2, 32, 32, 3]))["logits"].numpy()
    np.testing.assert_allclose(logits, -3.0)
    assert resnet_v2.ResNetV2.from_config(model.get_config()).head_bias_init == -3.0

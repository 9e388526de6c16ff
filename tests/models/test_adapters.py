import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from experts.models import adapters, resnet_v2

TINY = "r14x0.125"


def count(variables):
    return sum(v.shape.num_elements() for v in variables)


def randomise(variables, stddev=0.2):
    for v in variables:
        v.assign(v + tf.random.normal(v.shape, stddev=stddev))


@pytest.mark.one_pass
def test_one_adapter_set_on_r50x1_is_about_six_percent():
    model = resnet_v2.ResNetV2("r50x1", num_experts=1).build_for(32)
    assert model.block_input_channels == [64, 256, 512, 1024]
    convs = [v for v in model.adapter_variables if "conv1x1" in v.name]
    norms = [v for v in model.adapter_variables if "group_norm" in v.name]
    assert count(convs) == 1_380_352
    assert count(norms) == 3 * (64 + 256 + 512 + 1024)
    backbone = count(model.weights) - count(model.adapter_variables)
    assert backbone == 23_500_352
    assert 0.055 < count(model.adapter_variables) / backbone < 0.065


@pytest.mark.one_pass
def test_adapter_sets_scale_with_experts():
    one = resnet_v2.ResNetV2(TINY, num_experts=1).build_for(32)
    five = resnet_v2.ResNetV2(TINY, num_experts=5).build_for(32)
    assert count(five.adapter_variables) == 5 * count(one.adapter_variables)


def test_untrained_adapter_expert_equals_baseline():
    baseline = resnet_v2.ResNetV2(TINY, num_classes=4).build_for(32)
    randomise(baseline.weights)
    experts = resnet_v2.ResNetV2(TINY, num_classes=4, num_experts=3).build_for(32)
    experts.copy_backbone_from(baseline)
    x = tf.random.uniform([3, 32, 32, 3])
    expected = baseline(x)["logits"].numpy()
    for expert in (0, 2, tf.constant([0, 1, 2])):
        np.testing.assert_allclose(experts(x, expert=expert)["logits"].numpy(), expected, atol=1e-5)


# Routed, alone and in a batch, an expert's output goes through the same float32
# operations summed in another order (a gathered per-example kernel, another batch
# size). Its relative L2 error is then a few units of float32's roundoff per layer,
# amplified through the network: tests/models/test_precision.py bounds this network's
# amplification of rounding by 64 units, and 16 times that leaves room for an input
# rounded across a ReLU's kink. A wrong expert's weights move outputs by order one.
REORDERING_BOUND = 2.0**-24 * 64 * 16


def relative_error(actual, desired) -> float:
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    return float(np.linalg.norm(actual - desired) / np.linalg.norm(desired))


def test_routing_gives_each_example_its_own_experts_output():
    model = resnet_v2.ResNetV2(TINY, num_classes=4, num_experts=3).build_for(32)
    randomise(model.weights)
    x = tf.random.uniform([5, 32, 32, 3])
    ids = tf.constant([2, 0, 1, 2, 0])
    routed = model(x, expert=ids)["pre_logits"].numpy()
    singles = [model.single_expert(e) for e in range(3)]
    for i, e in enumerate(ids.numpy()):
        alone = singles[e](x[i : i + 1], expert=0)["pre_logits"].numpy()[0]
        same_batch = model(x, expert=int(e))["pre_logits"].numpy()[i]
        assert relative_error(routed[i], alone) < REORDERING_BOUND
        assert relative_error(routed[i], same_batch) < REORDERING_BOUND
    # The experts really differ, far beyond the bound, so the checks above could fail.
    first, second = (singles[e](x, expert=0)["pre_logits"] for e in (0, 1))
    assert relative_error(first, second) > 100 * REORDERING_BOUND


def test_adapter_is_residual_bottleneck():
    layer = adapters.MultiAdapter(num_experts=2, channels=64)
    x = tf.random.normal([2, 4, 4, 64])
    np.testing.assert_array_equal(layer(x, 1).numpy(), x.numpy())  # zero-initialised A2
    randomise(layer.weights)
    # Reference: x + conv(relu(gn(conv(relu(gn(x)))))) with expert 1's weights.
    gn1 = keras.layers.GroupNormalization(groups=32, epsilon=1e-5)
    gn2 = keras.layers.GroupNormalization(groups=32, epsilon=1e-5)
    gn1.build(x.shape), gn2.build([2, 4, 4, 32])
    gn1.set_weights([layer.norm1_gamma[1], layer.norm1_beta[1]])
    gn2.set_weights([layer.norm2_gamma[1], layer.norm2_beta[1]])
    h = tf.einsum("bhwc,ck->bhwk", tf.nn.relu(gn1(x)), layer.conv1_kernel[1])
    expected = x + tf.einsum("bhwc,ck->bhwk", tf.nn.relu(gn2(h)), layer.conv2_kernel[1])
    np.testing.assert_allclose(layer(x, 1).numpy(), expected.numpy(), atol=1e-4)
    assert layer.conv1_kernel.shape == (2, 64, 32) and layer.conv2_kernel.shape == (2, 32, 64)


@pytest.mark.one_pass
def test_frozen_backbone_gets_no_update_while_adapters_train():
    model = resnet_v2.ResNetV2(TINY, num_classes=4, num_experts=2).build_for(32)
    randomise(model.backbone_and_head_weights)
    model.freeze_backbone()
    assert {id(v) for v in model.trainable_variables} == {id(v) for v in model.adapter_variables}
    before = {v.name: v.numpy().copy() for v in model.weights}
    optimizer = keras.optimizers.SGD(0.5)
    x, labels = tf.random.uniform([4, 32, 32, 3]), tf.constant([0, 1, 2, 3])
    for _ in range(2):
        with tf.GradientTape() as tape:
            logits = model(x, expert=tf.constant([0, 1, 0, 1]), training=True)["logits"]
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        assert all(g is not None for g in grads)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    adapter_names = {v.name for v in model.adapter_variables}
    for v in model.weights:
        if v.name not in adapter_names:
            np.testing.assert_array_equal(v.numpy(), before[v.name], err_msg=v.name)
    assert any(not np.array_equal(v.numpy(), before[v.name]) for v in model.adapter_variables)
    model.freeze_backbone(False)
    assert len(model.trainable_variables) == len(model.weights)


@pytest.mark.one_pass
def test_routing_errors_are_clear():
    model = resnet_v2.ResNetV2(TINY, num_experts=2).build_for(32)
    x = tf.zeros([2, 32, 32, 3])
    with pytest.raises(ValueError, match="pass expert="):
        model(x)
    with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
        model(x, expert=tf.constant([0, 2]))
    with pytest.raises(ValueError, match="no adapters"):
        resnet_v2.ResNetV2(TINY)(x, expert=0)
    with pytest.raises(ValueError, match="out of range"):
        model.single_expert(2)


def test_adapter_model_serialisation_round_trip(tmp_path):
    model = resnet_v2.ResNetV2(TINY, num_classes=2, num_experts=3).build_for(32)
    randomise(model.weights)
    x, ids = tf.random.uniform([3, 32, 32, 3]), tf.constant([1, 2, 0])
    expected = model(x, expert=ids)["logits"].numpy()
    tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    clone = resnet_v2.ResNetV2.from_config(model.get_config()).build_for(32)
    tf.train.Checkpoint(model=clone).read(str(tmp_path / "ckpt")).assert_consumed()
    np.testing.assert_allclose(clone(x, expert=ids)["logits"].numpy(), expected, atol=1e-6)


def test_copy_backbone_without_head_keeps_the_new_head():
    source = resnet_v2.ResNetV2(TINY, num_classes=6).build_for(32)
    randomise(source.weights)
    target = resnet_v2.ResNetV2(TINY, num_classes=2).build_for(32)
    target.copy_backbone_from(source, include_head=False)
    x = tf.random.uniform([2, 32, 32, 3])
    np.testing.assert_allclose(target(x)["pre_logits"], source(x)["pre_logits"], atol=1e-5)
    np.testing.assert_array_equal(target(x)["logits"].numpy(), 0.0)
    with pytest.raises(ValueError, match="cannot copy"):
        target.copy_backbone_from(source)

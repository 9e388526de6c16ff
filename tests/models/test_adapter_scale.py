"""The adapters' trainable output scale: the identity at first, set from B's stream,
trained with the adapters, kept by single experts and checkpoints."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from experts.models import adapters, resnet_v2

TINY = "r14x0.125"


def randomise(variables, stddev=0.2, seed=0):
    rng = np.random.default_rng(seed)
    for v in variables:
        v.assign(v + stddev * rng.standard_normal(v.shape).astype(np.float32))


def scaled_model(num_experts=3, outputs=5):
    return resnet_v2.ResNetV2(
        TINY, num_classes=outputs, num_experts=num_experts, adapter_scale=True
    ).build_for(32)


def random_b_and_its_scaled_model():
    """A B with random weights, and a scaled adapter model on B's backbone."""
    baseline = resnet_v2.ResNetV2(TINY, num_classes=5).build_for(32)
    randomise(baseline.weights)
    model = scaled_model()
    model.copy_backbone_from(baseline)
    return baseline, model


def baseline_stream_rms(model: resnet_v2.ResNetV2, images) -> list[float]:
    """RMS of each block's input in B's network, layer by layer (the reference)."""
    x = images * 2.0 - 1.0
    x = model.root_pool(model.root_pool_pad(model.root_conv(model.root_pad(x))))
    found = []
    for block in model.blocks:
        found.append(float(np.sqrt(np.mean(x.numpy() ** 2))))
        for unit in block:
            x = unit(x)
    return found


def test_an_untrained_scaled_adapter_expert_equals_b_whatever_the_scale():
    baseline, model = random_b_and_its_scaled_model()
    x = tf.random.uniform([4, 32, 32, 3], seed=1)
    expected = baseline(x)["logits"].numpy()
    ids = tf.constant([0, 2, 1, 2])
    np.testing.assert_array_equal(model(x, expert=ids)["logits"].numpy(), expected)
    scales = model.calibrate_adapter_scales(x, ids)
    assert min(scales) > 1.0  # the stream is larger than the adapter's unit output
    np.testing.assert_array_equal(model(x, expert=ids)["logits"].numpy(), expected)


def test_calibration_sets_every_experts_scale_to_bs_stream_rms_at_each_block():
    baseline, model = random_b_and_its_scaled_model()
    x = tf.random.uniform([6, 32, 32, 3], seed=2)
    scales = model.calibrate_adapter_scales(x, tf.constant([0, 1, 2, 0, 1, 2]))
    expected = baseline_stream_rms(baseline, x)
    np.testing.assert_allclose(scales, expected, rtol=1e-5)
    for adapter, value in zip(model.adapters, expected, strict=True):
        np.testing.assert_allclose(adapter.scale.numpy(), [value] * 3, rtol=1e-5)


def test_the_scale_multiplies_each_experts_own_output():
    layer = adapters.MultiAdapter(num_experts=3, channels=64, output_scale=True)
    plain = adapters.MultiAdapter(num_experts=3, channels=64)
    x = tf.random.normal([4, 4, 4, 64], seed=3)
    layer(x, 0), plain(x, 0)
    np.testing.assert_array_equal(layer(x, 1).numpy(), x.numpy())  # zero-initialised A2
    randomise(plain.weights)
    for src, dst in zip(plain.weights, layer.weights, strict=False):  # the scale comes last
        dst.assign(src)
    layer.scale.assign([2.0, 0.5, 3.0])
    ids = tf.constant([1, 0, 2, 1])
    expected = plain.residual(x, ids).numpy() * np.array([0.5, 2.0, 3.0, 0.5])[:, None, None, None]
    np.testing.assert_allclose(layer.residual(x, ids).numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        layer(x, 2).numpy(), x.numpy() + 3.0 * plain.residual(x, 2).numpy(), rtol=1e-5, atol=1e-5
    )


def test_the_scale_trains_with_the_adapters_for_the_experts_in_the_batch_only():
    model = scaled_model(num_experts=4)
    randomise(model.backbone_and_head_weights, seed=4)
    model.freeze_backbone()
    scales = [a.scale for a in model.adapters]
    trainable = {id(v) for v in model.trainable_variables}
    assert {id(v) for v in scales} <= trainable
    assert trainable == {id(v) for v in model.expert_variables}
    assert not any("kernel" in v.name for v in scales)  # the loop decays kernels only
    np.testing.assert_array_equal(tf.stack(scales).numpy(), 1.0)
    x, ids = tf.random.uniform([4, 32, 32, 3], seed=5), tf.constant([0, 2, 2, 0])
    optimizer = keras.optimizers.SGD(0.1)
    for _ in range(2):  # A2 leaves zero on the first step, the scale moves on the second
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x, expert=ids, training=True)["logits"] ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    moved = np.abs(tf.stack(scales).numpy() - 1.0)
    assert moved[:, [0, 2]].min() > 0
    np.testing.assert_array_equal(moved[:, [1, 3]], 0.0)


def test_single_expert_config_and_checkpoint_keep_the_scale(tmp_path):
    model = scaled_model()
    randomise(model.weights, seed=6)
    x = tf.random.uniform([2, 32, 32, 3], seed=7)
    alone = model.single_expert(2)
    assert alone.adapter_scale
    np.testing.assert_allclose(
        alone(x, expert=0)["pre_logits"].numpy(),
        model(x, expert=2)["pre_logits"].numpy(),
        rtol=1e-5,
        atol=1e-5,
    )
    tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    clone = resnet_v2.ResNetV2.from_config(model.get_config()).build_for(32)
    tf.train.Checkpoint(model=clone).read(str(tmp_path / "ckpt")).assert_consumed()
    for mine, theirs in zip(clone.adapters, model.adapters, strict=True):
        np.testing.assert_array_equal(mine.scale.numpy(), theirs.scale.numpy())
    np.testing.assert_array_equal(
        clone(x, expert=1)["pre_logits"].numpy(), model(x, expert=1)["pre_logits"].numpy()
    )
    unscaled = resnet_v2.ResNetV2(TINY, num_classes=5, num_experts=3).build_for(32)
    with pytest.raises(AssertionError):
        tf.train.Checkpoint(model=unscaled).read(str(tmp_path / "ckpt")).assert_consumed()


def test_a_model_without_scales_cannot_be_calibrated():
    model = resnet_v2.ResNetV2(TINY, num_classes=5, num_experts=2).build_for(32)
    with pytest.raises(ValueError, match="no adapter scales"):
        model.calibrate_adapter_scales(tf.zeros([1, 32, 32, 3]))

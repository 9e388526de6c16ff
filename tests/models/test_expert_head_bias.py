"""The adapter experts' own head biases and the adapters' scale against the stream."""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from experts.models import resnet_v2

TINY = "r14x0.125"


def randomise(variables, stddev=0.2):
    for v in variables:
        v.assign(v + tf.random.normal(v.shape, stddev=stddev))


def biased_model(num_experts=3, outputs=5):
    model = resnet_v2.ResNetV2(
        TINY, num_classes=outputs, num_experts=num_experts, expert_head_bias=True
    ).build_for(32)
    randomise(model.weights)
    return model


def test_an_experts_head_bias_offsets_its_logits_and_no_feature():
    model = biased_model()
    bias = model.expert_bias.bias
    x, ids = tf.random.uniform([4, 32, 32, 3]), tf.constant([2, 0, 1, 2])
    out = model(x, expert=ids)
    plain = model.head(out["pre_logits"]).numpy()
    np.testing.assert_allclose(out["logits"].numpy(), plain + bias.numpy()[ids.numpy()], atol=1e-5)
    bias.assign(bias + 1.0)
    np.testing.assert_array_equal(model(x, expert=ids)["pre_logits"].numpy(), out["pre_logits"])


def test_the_head_bias_trains_only_for_the_experts_in_the_batch():
    model = biased_model(num_experts=4)
    model.freeze_backbone()
    assert {id(v) for v in model.trainable_variables} == {id(v) for v in model.expert_variables}
    x, ids = tf.random.uniform([4, 32, 32, 3]), tf.constant([0, 2, 2, 0])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, expert=ids, training=True)["logits"] ** 2)
    grad = tf.convert_to_tensor(tape.gradient(loss, model.expert_bias.bias)).numpy()
    assert np.abs(grad[[0, 2]]).min() > 0
    np.testing.assert_array_equal(grad[[1, 3]], 0.0)


def test_single_expert_and_checkpoints_keep_the_head_bias(tmp_path):
    model = biased_model()
    x = tf.random.uniform([2, 32, 32, 3])
    alone = model.single_expert(1)
    np.testing.assert_allclose(
        alone(x, expert=0)["logits"].numpy(), model(x, expert=1)["logits"].numpy(), atol=1e-5
    )
    tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    clone = resnet_v2.ResNetV2.from_config(model.get_config()).build_for(32)
    tf.train.Checkpoint(model=clone).read(str(tmp_path / "ckpt")).assert_consumed()
    np.testing.assert_array_equal(clone.expert_bias.bias.numpy(), model.expert_bias.bias.numpy())


def test_the_head_bias_is_neither_backbone_nor_adapter_weight():
    """B's weights copy into an adapter model with a head bias one to one, and the
    feature modules' adapters are the adapters alone."""
    model = biased_model()
    plain = resnet_v2.ResNetV2(TINY, num_classes=5).build_for(32)
    assert len(model.backbone_and_head_weights) == len(plain.weights)
    assert len(model.expert_variables) == len(model.adapter_variables) + 1
    model.copy_backbone_from(plain)


def test_adapter_rms_ratios_measure_each_adapter_against_its_input():
    model = resnet_v2.ResNetV2(TINY, num_classes=5, num_experts=2).build_for(32)
    x, ids = tf.random.uniform([3, 32, 32, 3]), tf.constant([1, 0, 1])
    np.testing.assert_array_equal(model.adapter_rms_ratios(x, ids).numpy(), 0.0)  # untrained
    randomise(model.weights)
    seen = []
    for layer in model.adapters:  # the block inputs, as the forward pass meets them
        layer.call = lambda h, e, layer=layer: seen.append(h) or h + layer.residual(h, e)
    model(x, expert=ids)
    expected = [
        np.sqrt(np.mean(layer.residual(h, ids).numpy() ** 2)) / np.sqrt(np.mean(h.numpy() ** 2))
        for layer, h in zip(model.adapters, seen, strict=True)
    ]
    np.testing.assert_allclose(model.adapter_rms_ratios(x, ids).numpy(), expected, rtol=1e-4)
    assert min(expected) > 0


def test_a_plain_model_has_no_adapter_scale_to_measure():
    model = resnet_v2.ResNetV2(TINY, num_classes=5).build_for(32)
    try:
        model.adapter_rms_ratios(tf.zeros([1, 32, 32, 3]), 0)
    except ValueError as e:
        assert "no adapters" in str(e)
    else:
        raise AssertionError("expected a ValueError")


def test_head_bias_needs_no_decay_and_starts_at_zero():
    model = resnet_v2.ResNetV2(TINY, num_classes=5, num_experts=2, expert_head_bias=True)
    model.build_for(32)
    assert "kernel" not in model.expert_bias.bias.name  # the loop decays kernels only
    np.testing.assert_array_equal(model.expert_bias.bias.numpy(), 0.0)
    assert isinstance(model.expert_bias, keras.layers.Layer)

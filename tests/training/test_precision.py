"""The trainer under mixed precision: it trains, float16 scales its loss and skips
overflowing steps, reused steps start from a fresh loss scale, and checkpoints stay
float32 (a float32 model restores them)."""

import dataclasses

import ml_collections
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from experts import work_tree
from experts.configs import baseline
from experts.models import resnet_v2
from experts.training import loop, precision
from tests.training import synthetic

MIXED = ["mixed_bfloat16", "mixed_float16"]
# The compute dtype's unit roundoff, and the bound on how far this network's outputs
# move from float32 with the same weights, in those units (tests/models/test_precision.py
# derives it). A run of a few small steps moves its weights by gradients that carry that
# error, so its losses stay within the same relative bound; a real defect (an unscaled
# float16 gradient, a step lost to a skipped update, a float16 master weight) costs
# whole factors. Whether the CPU has 16-bit units or emulates them changes where in
# the bound a run lands, not the bound.
UNIT_ROUNDOFF = {"mixed_bfloat16": 2.0**-8, "mixed_float16": 2.0**-11}
OUTPUT_BOUND_IN_UNITS = 64


@pytest.fixture(autouse=True)
def _global_policy_untouched():
    yield
    assert keras.mixed_precision.global_policy().name == "float32"


def _train_on_one_batch(workdir, policy) -> list[float]:
    """Twenty-four plain SGD steps on one batch over and over, at a learning rate well
    below the head's stability limit, so the loss falls at every log line in any
    precision. (At twice this rate float32's loss rose again by the twelfth step on
    one CPU, AVX-512 BF16, while the mixed runs kept falling: where the limit lies
    depends on the arithmetic, so the rate keeps a factor of two from it.)"""
    job = synthetic.job(dtype=policy)

    def one_batch(ctx, batch, seed, start):
        return synthetic.dataset_fn(ctx, batch, seed).take(1).repeat()

    config = synthetic.config(
        total_steps=24, log_every=6, global_batch=8, base_lr=0.05, momentum=0.0,
        weight_decay=0.0, precision=policy,
    )  # fmt: skip
    return loop.train(dataclasses.replace(job, dataset_fn=one_batch), config, workdir)["losses"]


def test_mixed_precision_trains_like_float32_and_saves_float32_weights(tmp_path):
    reference = _train_on_one_batch(tmp_path / "float32", "float32")
    # The comparison below needs a reference that does not oscillate.
    assert np.all(np.diff(reference) < 0), ("float32", reference)
    for policy in MIXED:
        losses = _train_on_one_batch(tmp_path / policy, policy)
        assert np.all(np.isfinite(losses)) and np.all(np.diff(losses) < 0), (policy, losses)
        assert losses[-1] < 0.95 * losses[0], (policy, losses)
        bound = OUTPUT_BOUND_IN_UNITS * UNIT_ROUNDOFF[policy]
        np.testing.assert_allclose(losses, reference, rtol=bound, err_msg=policy)
        final = work_tree.JobDir(tmp_path / policy).final_model
        dtypes = tf.train.load_checkpoint(final).get_variable_to_dtype_map()
        assert {dtypes[n] for n in dtypes if n.startswith("model/")} == {tf.float32}
        # A float32 model (an export, a warm start) reads the checkpoint as it is.
        plain = resnet_v2.ResNetV2("r14x0.125", synthetic.NUM_CLASSES).build_for()
        tf.train.Checkpoint(model=plain).read(final).assert_consumed()


def _compiled(policy, loss_factor=1.0):
    job = synthetic.job(dtype=policy)
    scaled = dataclasses.replace(
        job, per_example_loss=lambda m, b: loss_factor * job.per_example_loss(m, b)
    )
    config = synthetic.config(precision=policy, weight_decay=0.0)
    compiled = loop._compile(scaled, config, tf.distribute.get_strategy(), 0.1, 10)
    # A non-zero head, so that gradients reach the 16-bit body (a zero head stops them).
    head = compiled.model.head.kernel
    head.assign(0.1 * tf.random.stateless_normal(head.shape, seed=[0, 1]))
    dataset = synthetic.dataset_fn(tf.distribute.InputContext(), config.global_batch, 0)
    return compiled, iter(dataset)


def test_float16_steps_that_overflow_are_skipped_and_reuse_resets_the_scale():
    # A loss of ~1e4 times the real one, scaled by the initial 2^15, overflows float16's
    # 65,504 in the backward pass: the step must change nothing but the scale.
    compiled, batches = _compiled("mixed_float16", loss_factor=1e4)
    optimizer = compiled.optimizer
    assert isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
    assert float(optimizer.loss_scale) == optimizer.initial_scale
    before = [v.numpy() for v in compiled.model.trainable_variables]
    compiled.run_steps(batches, tf.constant(1))
    assert float(optimizer.loss_scale) == optimizer.initial_scale / 2
    assert int(optimizer.iterations) == 1  # the step counts, so resuming stays aligned
    for old, new in zip(before, compiled.model.trainable_variables, strict=True):
        np.testing.assert_array_equal(new.numpy(), old)
    # A job reusing this compiled step (CompiledJobs) starts as a fresh one would.
    compiled.reset()
    assert float(optimizer.loss_scale) == optimizer.initial_scale
    assert int(optimizer.dynamic_counter) == 0 and int(optimizer.iterations) == 0


@pytest.mark.one_pass
def test_bfloat16_needs_no_loss_scaling():
    compiled, _ = _compiled("mixed_bfloat16")
    assert not isinstance(compiled.optimizer, keras.mixed_precision.LossScaleOptimizer)


@pytest.mark.one_pass
def test_a_model_in_another_precision_is_a_clear_error(tmp_path):
    config = synthetic.config(precision="mixed_bfloat16")
    with pytest.raises(ValueError, match="train.precision is mixed_bfloat16 but the job's model "
                       "computes in float32"):  # fmt: skip
        loop.train(synthetic.job(), config, tmp_path)


@pytest.mark.one_pass
def test_precision_names():
    assert precision.resolve("mixed_float16") == "mixed_float16"
    # This machine has no accelerator: auto keeps float32.
    assert precision.resolve("auto") == "float32"
    assert precision.of_config(ml_collections.ConfigDict({})) == "float32"
    with pytest.raises(ValueError, match="train.precision: unknown precision 'fp16'"):
        precision.resolve("fp16")


@pytest.mark.one_pass
def test_presets_choose_precision():
    assert baseline.get_config("paper").train.precision == "auto"
    assert baseline.get_config("cpu").train.precision == "float32"
    assert baseline.get_config("smoke").train.precision == "float32"

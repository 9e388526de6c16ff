"""How the adapter job weighs its experts' examples and what it logs as it trains."""

import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from experts import jobs
from experts.training import loop


def test_per_expert_weights_give_each_experts_mean_loss_weight_one():
    expert = tf.constant([0, 0, 0, 1, 3, 3])
    losses = np.array([1.0, 2.0, 3.0, 10.0, 4.0, 8.0])
    weights = jobs.per_expert_weights(expert, num_experts=4).numpy()
    np.testing.assert_allclose(weights, [2, 2, 2, 6, 3, 3])
    # The batch average of the weighted losses is the sum of each expert's own mean.
    weighted = tf.nn.compute_average_loss(weights * losses, global_batch_size=6).numpy()
    np.testing.assert_allclose(weighted, 2.0 + 10.0 + 6.0, rtol=1e-6)
    # Each expert's examples together weigh one batch's worth, whatever their count.
    for e in (0, 1, 3):
        np.testing.assert_allclose(weights[expert.numpy() == e].sum() / len(losses), 1.0)


def test_per_expert_weights_are_all_one_for_a_single_expert():
    weights = jobs.per_expert_weights(tf.constant([2, 2, 2, 2]), num_experts=3).numpy()
    np.testing.assert_array_equal(weights, 1.0)


def test_the_job_scalars_go_to_tensorboard_and_the_console(tmp_path, capsys):
    writer = tf.summary.create_file_writer(str(tmp_path))
    progress = loop._Progress("adapters", total=10, global_batch=4, start=0, writer=writer)
    progress.log(5, 1.5, 0.1, {"adapter_rms_ratio/block1": 0.25})
    writer.flush()
    assert "adapter_rms_ratio/block1 0.25" in capsys.readouterr().out
    events = event_accumulator.EventAccumulator(str(tmp_path))
    events.Reload()
    [value] = events.Tensors("train/adapter_rms_ratio/block1")
    assert value.step == 5
    np.testing.assert_allclose(tf.make_ndarray(value.tensor_proto), 0.25)

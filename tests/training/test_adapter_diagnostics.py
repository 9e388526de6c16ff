"""The adapter diagnostics' measures on made-up features and logits."""

import numpy as np

from experts.bench import adapter_diagnostics as diag
from experts.configs import adapter_diagnostics as diag_config
from tests.bad_input import fails_cleanly


def test_a_common_offset_is_all_shift_and_cancelling_changes_none():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 8))
    np.testing.assert_allclose(diag.shift_share(base + np.arange(8.0), base), 1.0)
    signs = np.where(np.arange(50)[:, None] % 2 == 0, 1.0, -1.0)
    assert diag.shift_share(base + signs * np.ones(8), base) < 1e-12  # rounding only
    assert diag.shift_share(base, base) == 0.0  # no change at all


def test_the_fitted_bias_matches_each_outputs_rate():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(400, 3))
    targets = (rng.uniform(size=(400, 3)) < [0.1, 0.5, 0.9]).astype(float)
    bias = diag.fit_bias(targets, logits, steps=50, ridge=0.0)
    probs = 1 / (1 + np.exp(-(logits + bias)))
    # The optimum's condition: mean predicted probability equals the mean target.
    np.testing.assert_allclose(probs.mean(0), targets.mean(0), atol=1e-6)
    assert diag.sigmoid_loss(targets, logits + bias) < diag.sigmoid_loss(targets, logits)


def test_an_output_without_positives_is_held_at_the_bound():
    bias = diag.fit_bias(np.zeros((10, 1)), np.zeros((10, 1)), steps=40, ridge=0.0, bound=15.0)
    assert bias[0] == -15.0


def test_the_ridge_keeps_a_rare_outputs_bias_moderate():
    targets = np.zeros((200, 1))
    targets[0] = 1.0  # one positive in 200
    free = diag.fit_bias(targets, np.zeros((200, 1)), steps=60, ridge=0.0)
    held = diag.fit_bias(targets, np.zeros((200, 1)), steps=60, ridge=1.0)
    np.testing.assert_allclose(free[0], -np.log(199), rtol=1e-6)  # the exact log-odds
    assert free[0] < held[0] < 0


def test_the_sigmoid_loss_sums_outputs_and_averages_images():
    loss = diag.sigmoid_loss(np.array([[1.0, 0.0]] * 2), np.zeros((2, 2)))
    np.testing.assert_allclose(loss, 2 * np.log(2))


def test_recovered_shares_of_a_gain():
    assert diag.recovered(10.0, 8.0, 6.0) == 0.5
    assert np.isnan(diag.recovered(10.0, 8.0, 11.0))  # no gain to recover


def test_a_prior_offset_is_recovered_out_of_sample():
    """Logits that miss a per-output offset: the cross-fitted bias recovers most of it."""
    rng = np.random.default_rng(2)
    true = rng.normal(size=(200, 4))
    targets = (rng.uniform(size=true.shape) < 1 / (1 + np.exp(-true))).astype(float)
    off = true - np.array([3.0, -2.0, 1.0, 0.0])
    fitted = diag.cross_fitted_bias_loss(targets, off, steps=30)
    share = diag.recovered(
        diag.sigmoid_loss(targets, off), fitted, diag.sigmoid_loss(targets, true)
    )
    assert share > 0.9


def test_a_work_tree_without_adapter_experts_is_one_line(tmp_path):
    config = diag_config.get_config("smoke")
    config.workdir = str(tmp_path / "upstream")
    fails_cleanly(
        lambda: diag.execute(config), diag.PROGRAM, "no finished adapter job", roots=(tmp_path,)
    )

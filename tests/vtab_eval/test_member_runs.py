"""An ensemble member's protocol keeps its runs' class probabilities: the val200 ones of
a train800 run of the chosen setting (the sweep's own run when there is a sweep) and
the test ones of every final run, beside its record, which stays the protocol's."""

import numpy as np
import pytest

from vtab_eval import tasks
from vtab_eval.configs import transfer
from vtab_eval.finetune import ensemble, protocol
from vtab_eval.finetune import runs as tuning
from vtab_eval.finetune import tuner as finetune
from vtab_eval.finetune.hyperparams import HParams
from vtab_eval.pool import expert_pool as pool
from vtab_eval.run_dir import RunDir

RED = "tests/experts/bit/tiny/tiny_upstream/red/1"
GOOD = HParams(0.3, 40, 8, warmup_steps=4, decay_boundaries=(24,))
USELESS = HParams(1e-9, 1, 8, warmup_steps=0, decay_boundaries=())


@pytest.fixture(scope="module")
def tuner(hub_root):
    return finetune.FineTuner(str(hub_root / RED), max_classes=5, image_size=8, eval_batch=16)


def _splits(task):
    return {s: task.splits[s] for s in tasks.SPLITS}


def _float16_ties(log_probs) -> int:
    """Examples whose top two log-probabilities are equal once rounded to float16: the
    only ones whose prediction the kept values may not tell."""
    top = np.sort(log_probs.astype(np.float32), axis=-1)[:, -2:]
    return int(np.sum(top[:, 0] == top[:, 1]))


def _check_agrees(log_probs, labels, accuracy):
    got = np.mean(np.argmax(log_probs, -1) == labels)
    assert abs(got - accuracy) <= _float16_ties(log_probs) / len(labels)
    # Each row is a distribution, to float16's rounding of each value x (2**-11 of it),
    # which moves exp(x) by about |x| 2**-11 of it; twice that bounds the rest.
    x = log_probs.astype(np.float64)
    bound = (np.exp(x) * np.abs(x)).sum(-1) * 2**-10
    assert np.all(np.abs(np.exp(x).sum(-1) - 1) <= bound + 1e-6)


@pytest.mark.parametrize("candidates", [[GOOD], [USELESS, GOOD]])
def test_a_member_keeps_validation_and_test_probabilities(tuner, red_task, candidates):
    def run(keep):
        return protocol.run_protocol(
            tuner, _splits(red_task), lambda n: candidates, sweep_repeats=2,
            final_repeats=2, seed=7, num_classes=4, keep=keep,
        )  # fmt: skip

    plain, kept = run(False), run(True)
    assert "arrays" not in plain and "ensemble_seconds" not in plain
    # The protocol's own runs are the same, kept or not (same seeds, same weights).
    assert kept["test_accuracies"] == plain["test_accuracies"]
    arrays = kept.pop("arrays")
    assert (
        arrays["val_log_probs"].shape == (2, 10, 4) and arrays["val_log_probs"].dtype == "float16"
    )
    assert arrays["test_log_probs"].shape == (4, 30, 4)
    np.testing.assert_array_equal(arrays["val_labels"], red_task.splits["val200"][1])
    np.testing.assert_array_equal(arrays["test_labels"], red_task.splits["test"][1])
    for t, trial in enumerate(kept["trials"]):
        val = trial["ensemble_val"]
        _check_agrees(arrays["val_log_probs"][t], arrays["val_labels"], val["val_accuracy"])
        for r, final in enumerate(trial["finals"]):
            test = arrays["test_log_probs"][2 * t + r]
            _check_agrees(test, arrays["test_labels"], final["test_accuracy"])
        if len(candidates) > 1:  # the sweep's own run of the chosen setting: no extra run
            assert val == {"from_sweep": True, "val_accuracy": trial["sweep"][1]["val_accuracy"]}
        else:  # the run the sweep would have made, on its seed
            assert val["seed"] == finetune.run_seed(7, t, "sweep", 0) and val["seconds"] > 0
    extra = sum(t["ensemble_val"].get("seconds", 0.0) for t in kept["trials"])
    assert kept["ensemble_seconds"] == pytest.approx(extra)
    assert (extra > 0) == (len(candidates) == 1)


def test_a_run_directory_keeps_them_beside_the_record_and_remakes_a_record_without(
    hub_root, red_task, tmp_path
):
    config = transfer.get_config("smoke")
    config.image_size = 8
    run = tuning.Tuning.for_run(config, RunDir(tmp_path))
    module = pool.open_pool(str(hub_root)).get("bit/tiny/tiny_upstream/red")
    plain = run.finetune_expert(red_task, module)
    assert not run.probabilities_path(red_task, module).exists()
    log = []
    run.log = log.append
    kept = run.finetune_expert(red_task, module, keep=True)
    assert any("again, keeping its probabilities" in line for line in log)
    assert kept["test_accuracies"] == plain["test_accuracies"]  # the same seeds
    member = run.member_runs(red_task, module)
    assert isinstance(member, ensemble.MemberRuns) and member.test_log_probs.shape == (1, 30, 4)
    log.clear()
    assert run.finetune_expert(red_task, module, keep=True) == kept  # read back
    assert not log
    with pytest.raises(ValueError, match="screening runs keep no probabilities"):
        run.finetune_expert(red_task, module, screen=1, keep=True)
    run.probabilities_path(red_task, module).write_bytes(b"damaged")
    with pytest.raises(ValueError, match=r"\.npz: not a run's probabilities .*delete it"):
        run.member_runs(red_task, module)

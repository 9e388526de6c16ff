"""The greedy ensemble on hand-made probabilities whose answer is worked out by hand."""

import math

import numpy as np
import pytest

from vtab_eval.finetune import ensemble


def two_class(true_probs) -> np.ndarray:
    """``[candidates, examples, 2]`` probabilities giving class 0 (every example's true
    class below) the probabilities ``true_probs[candidate][example]``."""
    p = np.asarray(true_probs, np.float64)
    return np.stack([p, 1 - p], axis=-1)


LABELS = np.zeros(3, np.int64)
# A is right on the first two examples, B on the third.
A, B = [0.9, 0.9, 0.1], [0.1, 0.1, 0.9]


def nll(*true_probs) -> float:
    return -sum(math.log(p) for p in true_probs) / len(true_probs)


def test_members_are_added_with_replacement_while_the_nll_falls():
    """By hand: A alone has NLL (2 ln(1/0.9) + ln 10)/3 = 0.838 and B alone 1.570, so A
    comes first. A+B averages to 0.5 everywhere (ln 2 = 0.693), below A+A (= A): B
    joins. Then A+A+B gives (0.633, 0.633, 0.367): 0.6389, below A+B+B (0.821): A joins
    again. A+A+A+B gives (0.7, 0.7, 0.3): 0.6391, and A+A+B+B is A+B again (0.693), both
    above 0.6389: it stops at weights 2/3 and 1/3 (without replacement it would have
    stopped at A+B, 0.693)."""
    got = ensemble.greedy(two_class([A, B]), LABELS)
    assert got.members == (0, 1, 0)
    want = [nll(0.9, 0.9, 0.1), math.log(2), nll(1.9 / 3, 1.9 / 3, 1.1 / 3)]
    np.testing.assert_allclose(got.nll, want, rtol=1e-12)
    assert nll(0.7, 0.7, 0.3) > want[-1]  # the addition it refused
    np.testing.assert_allclose(got.weights(2), [2 / 3, 1 / 3])


def test_a_member_no_other_improves_stays_alone_and_ties_go_to_the_first():
    best, worse = [0.9, 0.9, 0.9], [0.6, 0.6, 0.6]
    got = ensemble.greedy(two_class([worse, best, best]), LABELS)
    assert got.members == (1,) and got.nll == (nll(0.9, 0.9, 0.9),)
    np.testing.assert_allclose(got.weights(3), [0, 1, 0])


def test_the_number_of_additions_is_capped():
    assert ensemble.greedy(two_class([A, B]), LABELS, max_members=2).members == (0, 1)
    with pytest.raises(ValueError, match="max_members must be >= 1"):
        ensemble.greedy(two_class([A]), LABELS, max_members=0)


def test_a_zero_probability_for_the_true_class_is_clipped_not_infinite():
    # Alone, the first candidate's NLL is ln(1e12) / 3 = 9.2, not infinite: B (1.57)
    # comes first, and the average of both (0.55, 0.55, 0.45) then lowers it.
    got = ensemble.greedy(two_class([[1.0, 1.0, 0.0], B]), LABELS)
    assert all(math.isfinite(x) for x in got.nll) and got.members[:2] == (1, 0)


def _runs(val_true, test_true, trials=1):
    """MemberRuns of one candidate: its validation runs per trial, its test runs."""
    val = np.log(two_class(val_true))
    test = np.log(np.maximum(two_class(test_true), 1e-30))
    return ensemble.MemberRuns(val, np.zeros(val.shape[1], np.int64), test, np.zeros(3, np.int64))


def test_members_are_chosen_on_validation_only_and_measured_on_each_final_run():
    """The test runs would favour B alone; the choice follows validation (A, B, A), and
    each final run r averages the members' run r with the weights of its trial."""
    a = _runs([A], [[0.7, 0.7, 0.4], [0.2, 0.2, 0.2]])  # one trial, two final runs
    b = _runs([B], [[0.3, 0.3, 0.9], [0.9, 0.9, 0.9]])
    got = ensemble.combine([a, b], ["bit/a", "bit/b"])
    assert got["trials"] == [
        {
            "members": ["bit/a", "bit/b", "bit/a"],
            "weights": {"bit/a": pytest.approx(2 / 3), "bit/b": pytest.approx(1 / 3)},
            "val_nll": pytest.approx(
                [nll(0.9, 0.9, 0.1), math.log(2), nll(1.9 / 3, 1.9 / 3, 1.1 / 3)]
            ),
        }
    ]
    # Run 1: class 0 gets (0.567, 0.567, 0.567): all right. Run 2: (0.433, 0.433,
    # 0.433): all wrong, though B alone is right everywhere.
    assert got["test_accuracies"] == [1.0, 0.0]
    assert got["median_test_accuracy"] == 0.5


def test_each_trial_chooses_for_its_own_final_runs():
    a = _runs([A, [0.9, 0.9, 0.9]], [[0.6] * 3] * 4)
    b = _runs([B, [0.6, 0.6, 0.6]], [[0.2] * 3] * 4)
    got = ensemble.combine([a, b], ["a", "b"])  # two trials of two final runs each
    assert [t["members"] for t in got["trials"]] == [["a", "b", "a"], ["a"]]
    # Trial 1: 2/3 * 0.6 + 1/3 * 0.2 = 0.467 < 0.5: wrong; trial 2: A alone, 0.6: right.
    assert got["test_accuracies"] == [0.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="differ in number or shape"):
        ensemble.combine([a, _runs([A], [[0.6] * 3])], ["a", "b"])

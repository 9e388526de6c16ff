"""Ensembles of the top experts (Mustafa et al. 2020, "Deep Ensembles for Low-Data
Transfer Learning"): members' class probabilities averaged, members chosen greedily.

The greedy procedure (Caruana et al. 2004, as Mustafa et al. use it): start from the
empty ensemble; at each step add the candidate, with replacement (a member may be added
again, which raises its weight), whose addition gives the lowest negative
log-likelihood of the averaged probabilities on the validation set; stop as soon as no
addition lowers it (or at ``MAX_MEMBERS`` additions). A member's weight is the number of
times it was added over the ensemble's size. Only validation data enters the choice;
test data only measures the result.

Which runs fill those roles follows the VTAB-1k protocol the single pick is reported
on: members are chosen and weighted on val200 with runs trained on train800, and
measured on test with the protocol's final runs, trained on train800val200 with the
same setting (finetune/protocol.py). Trial t's validation runs choose the weights of its
final runs, so final run r of the ensemble averages final run r of every member: the
same run seeds as the single pick's run r.

Probabilities are clipped at ``TINY`` before the logarithm: a member that gives the
true class zero probability (a logistic head that never saw a class) would otherwise
make the NLL infinite whatever the other members say.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Additions at most: weights in steps of 1/25 are finer than 200 validation images
# can tell apart, and the cap bounds a search whose NLL keeps falling by rounding.
MAX_MEMBERS = 25
TINY = 1e-12


def nll(true_class_probs: np.ndarray) -> float:
    """Mean negative log-likelihood of the probabilities given to the true classes."""
    return float(-np.mean(np.log(np.maximum(true_class_probs, TINY))))


def true_class(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``probs[..., i, labels[i]]``: each example's probability of its true class."""
    labels = np.asarray(labels)
    if probs.shape[-2] != len(labels):
        raise ValueError(f"{probs.shape[-2]} rows of probabilities for {len(labels)} labels")
    return probs[..., np.arange(len(labels)), labels]


@dataclasses.dataclass(frozen=True)
class Greedy:
    """The additions in order (candidate indices, repeats allowed) and the validation
    NLL after each."""

    members: tuple[int, ...]
    nll: tuple[float, ...]

    def weights(self, num_candidates: int) -> np.ndarray:
        counts = np.bincount(self.members, minlength=num_candidates).astype(np.float64)
        return counts / counts.sum()


def greedy(val_probs: np.ndarray, val_labels: np.ndarray, max_members: int = MAX_MEMBERS):
    """The greedy ensemble of ``val_probs`` ``[candidates, examples, classes]`` (each
    candidate's class probabilities on the validation set); ties go to the first
    candidate. Returns a ``Greedy``."""
    val_probs = np.asarray(val_probs, np.float64)
    if val_probs.ndim != 3 or len(val_probs) == 0:
        raise ValueError(
            f"need [candidates, examples, classes] probabilities, got {val_probs.shape}"
        )
    if max_members < 1:
        raise ValueError(f"max_members must be >= 1, got {max_members}")
    # Only the true class's probability enters the NLL: the sums stay [examples].
    truth = true_class(val_probs, val_labels)
    total, members, losses = np.zeros(truth.shape[1]), [], []
    while len(members) < max_members:
        size = len(members) + 1
        candidate_nll = [nll((total + p) / size) for p in truth]
        best = int(np.argmin(candidate_nll))  # the first of equals
        if losses and not candidate_nll[best] < losses[-1]:
            break
        total += truth[best]
        members.append(best)
        losses.append(candidate_nll[best])
    return Greedy(tuple(members), tuple(losses))


def average(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted average of ``probs`` ``[candidates, examples, classes]``."""
    return np.tensordot(np.asarray(weights, np.float64), np.asarray(probs, np.float64), axes=1)


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy; ties go to the lowest class, as ``np.argmax`` does."""
    return float(np.mean(np.argmax(probs, axis=-1) == np.asarray(labels)))


@dataclasses.dataclass(frozen=True)
class MemberRuns:
    """One candidate's runs on one task: per trial its validation log-probabilities
    ``[trials, val, classes]`` (a train800 run), per final run its test ones
    ``[trials * final_repeats, test, classes]`` (trial-major, as the protocol runs them)."""

    val_log_probs: np.ndarray
    val_labels: np.ndarray
    test_log_probs: np.ndarray
    test_labels: np.ndarray


def read_member_runs(path: Path) -> MemberRuns:
    """A member's kept probabilities (finetune/runs.py writes them beside its record),
    checked: a damaged file is named, with what to do."""
    try:
        with np.load(path) as data:
            runs = MemberRuns(*(data[f.name] for f in dataclasses.fields(MemberRuns)))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise ValueError(
            f"{path}: not a run's probabilities ({reason}); delete it to recompute it"
        ) from None
    val, test = runs.val_log_probs, runs.test_log_probs
    if (
        val.ndim != 3
        or test.ndim != 3
        or val.shape[2] != test.shape[2]
        or runs.val_labels.shape != val.shape[1:2]
        or runs.test_labels.shape != test.shape[1:2]
    ):
        raise ValueError(
            f"{path}: not a run's probabilities (validation {val.shape}, test {test.shape}); "
            "delete it to recompute it"
        )
    return runs


def combine(candidates: Sequence[MemberRuns], names: Sequence[str]) -> dict:
    """The greedy ensemble of ``candidates`` (named ``names``) on each trial's
    validation runs, measured on that trial's final runs: per final run its test
    accuracy, and per trial the members chosen with their weights and validation NLL."""
    if not candidates or len(candidates) != len(names):
        raise ValueError(f"{len(candidates)} candidates for {len(names)} names")
    first = candidates[0]
    trials, finals = len(first.val_log_probs), len(first.test_log_probs)
    for c in candidates:
        if c.val_log_probs.shape != first.val_log_probs.shape or (
            c.test_log_probs.shape != first.test_log_probs.shape
        ):
            raise ValueError("the candidates' runs differ in number or shape")
    if trials == 0 or finals % trials:
        raise ValueError(f"{finals} final runs do not split into {trials} trials")
    repeats = finals // trials
    accuracies, chosen = [], []
    for t in range(trials):
        val = np.exp(np.stack([c.val_log_probs[t] for c in candidates]).astype(np.float64))
        pick = greedy(val, first.val_labels)
        weights = pick.weights(len(candidates))
        for r in range(t * repeats, (t + 1) * repeats):
            test = np.exp(np.stack([c.test_log_probs[r] for c in candidates]).astype(np.float64))
            accuracies.append(accuracy(average(test, weights), first.test_labels))
        chosen.append(
            {
                "members": [names[i] for i in pick.members],
                "weights": {names[i]: float(w) for i, w in enumerate(weights) if w > 0},
                "val_nll": list(pick.nll),
            }
        )
    return {
        "test_accuracies": accuracies,
        "median_test_accuracy": float(np.median(accuracies)),
        "trials": chosen,
    }

"""The kNN proxy against scikit-learn, its tie rule, and its pick on a known pool."""

import math
import types

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from vtab_eval import features, selection
from vtab_eval.pool import expert_pool as pool
from vtab_eval.selection import Context, KnnSelector, knn


def _sklearn_loo(x, y, k=1):
    # kneighbors() without X leaves each training point out of its own neighbours.
    idx = (
        NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x).kneighbors(return_distance=False)
    )
    return idx, float(np.mean(y[idx[:, 0]] == y))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loo_1nn_matches_sklearn_across_chunks(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 24)) + 5.0  # An offset: the centring must not change anything.
    y = rng.integers(0, 5, 300)
    # 4096 scores per chunk: 13 rows at a time, so the last chunk is ragged.
    ours = knn.loo_neighbors(x, 1, chunk_elements=4096, dtype=dtype)
    theirs, accuracy = _sklearn_loo(x, y)
    np.testing.assert_array_equal(ours, theirs)
    assert knn.loo_accuracy(x, y, dtype=dtype, chunk_elements=4096) == accuracy
    assert 0.05 < accuracy < 0.5  # random labels: near chance, so the test is not trivial


def test_loo_3nn_neighbours_match_sklearn_in_order():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8))
    theirs, _ = _sklearn_loo(x, np.zeros(200), k=3)
    np.testing.assert_array_equal(knn.loo_neighbors(x, 3, chunk_elements=1000), theirs)


def test_loo_accuracy_is_one_on_separated_clusters_and_never_uses_itself():
    x = np.concatenate([np.zeros((5, 2)), np.full((5, 2), 10.0)]) + np.arange(10)[:, None] * 1e-3
    y = np.array([0] * 5 + [1] * 5)
    assert knn.loo_accuracy(x, y) == 1.0
    # Every point labelled uniquely: a point's own label is never available to it.
    assert knn.loo_accuracy(x, np.arange(10)) == 0.0


# One block; or blocks of 2 points, so that 0's tie (1 and 2) and 3's duplicate (4) are
# across blocks.
@pytest.mark.parametrize("chunk_elements", [1 << 24, 4])
def test_ties_go_to_the_lowest_index(chunk_elements):
    # Points 1 and 2 are both at distance 1 from point 0; 3 and 4 are exact duplicates.
    x = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [5.0, 5.0], [5.0, 5.0], [9.0, 9.0]])
    nn = knn.loo_neighbors(x, 1, chunk_elements=chunk_elements)[:, 0]
    assert nn[0] == 1 and nn[3] == 4 and nn[4] == 3
    assert nn[1] == 0 and nn[2] == 0
    for _ in range(3):  # and again, identically
        np.testing.assert_array_equal(
            knn.loo_neighbors(x, 1, chunk_elements=chunk_elements)[:, 0], nn
        )


@pytest.mark.parametrize("chunk_elements", [1 << 24, 64])
def test_integer_data_full_of_ties_follows_the_lowest_index_rule(chunk_elements):
    # Small integers: many exact duplicates and equidistant points, all scored exactly.
    rng = np.random.default_rng(5)
    base = rng.integers(0, 4, size=(60, 3)).astype(np.float32) + 7.0
    x = np.concatenate([base, base[:20]])
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    np.fill_diagonal(d, np.inf)
    lowest = [np.flatnonzero(row == row.min())[0] for row in d]
    nn = knn.loo_neighbors(x, 1, chunk_elements=chunk_elements)[:, 0]
    np.testing.assert_array_equal(nn, lowest)


@pytest.mark.parametrize("k", [2, 5])
def test_k_nearest_in_data_full_of_ties_are_brute_forces_in_order(k):
    # The k best come from k passes of argmax: with exact ties among them, or between
    # the k-th and the next, the order must still be distance, then index.
    rng = np.random.default_rng(6)
    x = rng.integers(0, 3, size=(90, 3)).astype(np.float32)
    np.testing.assert_array_equal(knn.loo_neighbors(x, k, chunk_elements=900), _brute_force(x, k))


def _brute_force(x, k=1):
    d = np.square(x[:, None].astype(np.float64) - x[None]).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("chunk_elements", [1 << 22, 500])
def test_stays_exact_when_norms_dwarf_distances(k, chunk_elements):
    # Two clusters 2e4 apart with neighbours 1e-3 apart: the score expansion's rounding
    # in float32 (~1e-7 of 4e8) is far larger than the distances, so the rows go to the
    # exact path, which must give brute force's neighbours.
    rng = np.random.default_rng(3)
    x = rng.normal(scale=1e-3, size=(80, 6)).astype(np.float32)
    x[:40, 0] += 1e4
    x[40:, 0] -= 1e4
    got = knn.loo_neighbors(x, k, chunk_elements=chunk_elements)
    np.testing.assert_array_equal(got, _brute_force(x, k))


def test_one_huge_value_does_not_change_the_neighbours():
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(4, 16)) * 10
    y = rng.integers(0, 4, 200)
    x = (centres[y] + rng.normal(size=(200, 16))).astype(np.float32)
    clean = knn.loo_accuracy(x, y)
    x[7, 3] = 1e12
    np.testing.assert_array_equal(knn.loo_neighbors(x), _brute_force(x))
    assert clean > 0.9 and knn.loo_accuracy(x, y) >= clean - 1 / 200


def test_vote_breaks_ties_by_the_nearest_neighbour():
    labels = np.array([[2, 1, 1], [2, 1, 3], [4, 4, 1], [0, 5, 5]])
    np.testing.assert_array_equal(knn.vote(labels), [1, 2, 4, 5])


def test_vote_is_the_row_by_row_count():
    def one_row(row):
        counts = {label: list(row).count(label) for label in row}
        return next(label for label in row if counts[label] == max(counts.values()))

    rng = np.random.default_rng(7)
    for k in (2, 5, 8):
        labels = rng.integers(-2, 4, size=(300, k)) * 7
        np.testing.assert_array_equal(knn.vote(labels), [one_row(r) for r in labels])


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="k must be in"):
        knn.loo_neighbors(np.zeros((3, 2)), 3)
    with pytest.raises(ValueError, match="features must be"):
        knn.loo_neighbors(np.zeros(3))
    with pytest.raises(ValueError, match="3 features but 2 labels"):
        knn.loo_accuracy(np.zeros((3, 2)), np.zeros(2))
    x = np.zeros((5, 3))
    x[2, 1] = np.nan
    x[4, 0] = np.inf
    with pytest.raises(
        ValueError, match=r"2 non-finite values, the first \(nan\) at row 2, column 1"
    ):
        knn.loo_neighbors(x)
    with pytest.raises(ValueError, match="too large for exact distances"):
        knn.loo_neighbors(np.array([[0.0], [1e200], [2.0]]))


def test_knn_picks_the_expert_whose_features_separate_the_classes(hub_root, red_task, tmp_path):
    the_pool = pool.open_pool(str(hub_root))
    store = features.FeatureStore(tmp_path, image_size=8)
    result = KnnSelector().select(red_task, Context(the_pool, store))
    red = "bit/tiny/tiny_upstream/red"
    assert result.pick == red and result.scores[red] == 1.0
    assert all(s < 0.6 for e, s in result.scores.items() if e != red)
    # The baseline is scored (for the plots) but not a candidate unless asked.
    assert "bit/tiny/tiny_upstream/baseline" in result.scores
    assert result.cost_seconds > 0 and result.details["num_examples"] == 50


def _paired(wins: int, losses: int, both: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Paired correctness vectors with ``wins`` examples only the expert gets right,
    ``losses`` only B gets right and ``both`` both get right."""
    expert = np.array([True] * wins + [False] * losses + [True] * both)
    baseline = np.array([False] * wins + [True] * losses + [True] * both)
    return expert, baseline


def test_the_fallback_keeps_an_expert_that_clearly_beats_b():
    test = knn.beats_baseline(*_paired(wins=60, losses=20), level=0.05)
    assert test["beats_baseline"] and (test["wins"], test["losses"]) == (60, 20)
    # The exact one-sided binomial tail: P(X >= 60 | n = 80, p = 1/2).
    want = sum(math.comb(80, i) for i in range(60, 81)) / 2**80
    assert test["p_value"] == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize(
    "wins,losses",
    [(30, 30), (0, 0), (20, 35), (25, 20)],  # equal, no discordant pair, worse, noise
)
def test_the_fallback_goes_to_b_unless_the_expert_is_better(wins, losses):
    test = knn.beats_baseline(*_paired(wins, losses), level=0.05)
    assert not test["beats_baseline"]
    assert test == knn.beats_baseline(*_paired(wins, losses), level=0.05)  # deterministic


def test_the_knn_selector_falls_back_on_b_when_the_best_does_not_beat_it(monkeypatch):
    """The best expert 'e' 10 examples ahead of B (55 wins, 45 losses): noise, so knn
    picks B and knn_nofallback 'e'; 120 ahead (150 wins, 30 losses): knn keeps 'e'."""
    base = pool.Module("b/baseline", "b/baseline", {"kind": "baseline"})
    the_pool = pool.Pool((base, pool.Module("e", "e", {"kind": "full"})))
    store = types.SimpleNamespace(compute_seconds=0.0, load_seconds=0.0)
    ctx = Context(the_pool, store)
    task = types.SimpleNamespace(spec="t", name="t")
    for (wins, losses), want in (((55, 45), "b/baseline"), ((150, 30), "e")):
        expert_correct, baseline_correct = _paired(wins, losses)
        correct = {"e": expert_correct, "b/baseline": baseline_correct}
        monkeypatch.setattr(
            KnnSelector,
            "_correct",
            lambda self, e, task, ctx, correct=correct: (correct[e.id], 0.0),
        )
        result = KnnSelector(include_baseline=True, fallback_level=0.05).select(task, ctx)
        assert result.pick == want and result.details["fallback"]["best"] == "e"
        assert result.scores["e"] > result.scores["b/baseline"]
        plain = selection.get_selector("knn_nofallback", include_baseline=True)
        assert plain.select(task, ctx).pick == "e"
    # The experts-only variant never tests: B is no candidate.
    only = selection.get_selector("knn_experts", include_baseline=True, fallback_level=0.05)
    assert only.select(task, ctx).pick == "e"

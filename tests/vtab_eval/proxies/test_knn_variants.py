"""kNN variants against a brute-force leave-one-out count."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from tests.vtab_eval.proxies.conftest import clustered
from vtab_eval.selection import knn, knn_variants, proxy_math


def _brute_force(x, labels, k, metric):
    distances = cdist(x, x, metric)
    np.fill_diagonal(distances, np.inf)
    hits = 0
    for i, row in enumerate(distances):
        nearest = labels[np.argsort(row, kind="stable")[:k]]
        values, counts = np.unique(nearest, return_counts=True)
        hits += values[np.argmax(counts)] == labels[i]  # no vote ties in this case
    return hits / len(labels)


@pytest.mark.parametrize(
    "cls,k,metric",
    [
        (knn_variants.KnnFiveSelector, 5, "euclidean"),
        (knn_variants.KnnCosineSelector, 1, "cosine"),
        (knn_variants.KnnCosineFiveSelector, 5, "cosine"),
    ],
)
def test_matches_brute_force(cls, k, metric):
    x, labels = clustered(n=61, d=6, classes=2, spread=1.5, seed=4)  # 2 classes, odd k
    x = x.astype(np.float64)
    assert cls().measure(x, labels, 0) == pytest.approx(_brute_force(x, labels, k, metric))


def test_cosine_ignores_row_scale():
    x, labels = clustered(n=40, d=5, classes=2, spread=1.0)
    scaled = x * np.linspace(0.1, 10, 40)[:, None].astype(np.float32)
    cosine = knn_variants.KnnCosineSelector()
    assert cosine.measure(x, labels, 0) == cosine.measure(scaled, labels, 0)


@pytest.mark.parametrize("cosine", [False, True])
def test_kept_neighbours_give_each_k_its_own_neighbours(cosine):
    # Tie-laden integer data: the nearest of the kept five are the nearest one, ties
    # resolved alike, whichever k is asked first.
    rng = np.random.default_rng(9)
    x = rng.integers(1, 4, size=(80, 3)).astype(np.float32)
    labels = np.arange(80) % 3
    rows = proxy_math.unit_rows(x.astype(np.float64)) if cosine else x
    for order in ((1, 5, 2), (5, 1, 7)):
        data = proxy_math.Labelled(x, labels)
        for k in order:
            np.testing.assert_array_equal(data.neighbours(k, cosine), knn.loo_neighbors(rows, k))

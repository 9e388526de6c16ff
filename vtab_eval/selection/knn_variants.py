"""kNN variants of the paper's performance proxy (section 5 uses k = 1, Euclidean):
more neighbours, and cosine distance (Euclidean on rows scaled to unit length; an
all-zero row stays zero). The exact leave-one-out neighbours are `knn.loo_neighbors`'.
"""

from __future__ import annotations

import numpy as np

from vtab_eval.selection.base import register
from vtab_eval.selection.feature_proxy import FeatureProxy
from vtab_eval.selection.knn import loo_accuracy


def unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


class _KnnVariant(FeatureProxy):
    k: int = 1
    cosine: bool = False
    score_label = "kNN accuracy"
    table_row = 80

    def measure_labelled(self, data, seed):
        x = unit_rows(data.x) if self.cosine else data.x
        return loo_accuracy(x, data.y, min(self.k, data.n - 1))

    def details(self):
        return {"k": self.k, "distance": "cosine" if self.cosine else "euclidean"}


@register
class KnnFiveSelector(_KnnVariant):
    name = "knn_k5"
    display_name = "kNN (k=5)"
    short_name = "kNN k=5"
    k = 5


@register
class KnnCosineSelector(_KnnVariant):
    name = "knn_cosine"
    display_name = "kNN (cosine)"
    short_name = "cosine kNN"
    cosine = True


@register
class KnnCosineFiveSelector(_KnnVariant):
    name = "knn_cosine_k5"
    display_name = "kNN (cosine, k=5)"
    short_name = "cosine kNN k=5"
    k = 5
    cosine = True

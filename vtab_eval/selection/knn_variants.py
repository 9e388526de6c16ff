"""kNN variants of the paper's performance proxy (section 5 uses k = 1, Euclidean):
more neighbours, and cosine distance (Euclidean on rows scaled to unit length; an
all-zero row stays zero). The exact leave-one-out neighbours are `knn.loo_neighbors`',
kept per distance by `proxy_math.Labelled`, so that k = 1 and k = 5 share them.
"""

from __future__ import annotations

import numpy as np

from vtab_eval.selection.base import register
from vtab_eval.selection.feature_proxy import FeatureProxy
from vtab_eval.selection.knn import vote


class _KnnVariant(FeatureProxy):
    k: int = 1
    cosine: bool = False
    score_label = "kNN accuracy"
    table_row = 80

    def measure_labelled(self, data, seed):
        neighbours = data.neighbours(min(self.k, data.n - 1), self.cosine)
        return float(np.mean(vote(data.y[neighbours]) == data.y))

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

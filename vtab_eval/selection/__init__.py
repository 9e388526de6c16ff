"""Expert selection: one module per proxy behind the `Selector` interface.

    from vtab_eval import selection
    selector = selection.get_selector("knn", k=1)
    result = selector.select(task, selection.Context(pool, store))
    result.pick, result.scores, result.seconds

Names: knn (performance proxy), knn_full and knn_adapter (kNN within one kind of
expert), knn_experts (kNN over the experts without the baseline), domain (EPN), label (label matching), random, and the references baseline and
oracle.
"""

from vtab_eval.selection.base import Context, SelectionResult, Selector, best
from vtab_eval.selection.domain import DomainPredictionSelector
from vtab_eval.selection.knn import KnnSelector, loo_accuracy, loo_neighbors
from vtab_eval.selection.knn_subpools import (
    KnnAdapterSelector,
    KnnExpertsSelector,
    KnnFullSelector,
)
from vtab_eval.selection.label_matching import LabelMatchingSelector
from vtab_eval.selection.random_pick import RandomSelector
from vtab_eval.selection.references import BaselineSelector, OracleSelector

# In the paper's Table 1 row order, which the reports follow.
SELECTORS: dict[str, type[Selector]] = {
    cls.name: cls
    for cls in (
        BaselineSelector,
        RandomSelector,
        DomainPredictionSelector,
        LabelMatchingSelector,
        KnnFullSelector,
        KnnAdapterSelector,
        KnnExpertsSelector,
        KnnSelector,
        OracleSelector,
    )
}


def selector_class(name: str) -> type[Selector]:
    if name not in SELECTORS:
        raise ValueError(f"unknown selector {name!r}; choose from {', '.join(SELECTORS)}")
    return SELECTORS[name]


def get_selector(name: str, **kwargs) -> Selector:
    return selector_class(name)(**kwargs)


__all__ = [
    "SELECTORS",
    "BaselineSelector",
    "Context",
    "DomainPredictionSelector",
    "KnnAdapterSelector",
    "KnnExpertsSelector",
    "KnnFullSelector",
    "KnnSelector",
    "LabelMatchingSelector",
    "OracleSelector",
    "RandomSelector",
    "SelectionResult",
    "Selector",
    "best",
    "get_selector",
    "selector_class",
    "loo_accuracy",
    "loo_neighbors",
]

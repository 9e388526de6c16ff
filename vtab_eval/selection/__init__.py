"""Expert selection: one module per proxy behind the `Selector` interface.

    from vtab_eval import selection
    selector = selection.get_selector("knn", k=1)
    result = selector.select(task, selection.Context(pool, store))
    result.pick, result.scores, result.seconds

Names: knn (performance proxy), knn_full and knn_adapter (kNN within one kind of
expert), knn_experts (kNN over the experts without the baseline), domain (EPN), label (label matching), random, and the references baseline and
oracle.

A selector is one class in one module of this folder, registered with `@register`
(`base.SELECTORS`), describing itself by class attributes (`Selector`'s docstring);
the runner and the report ask those, never a name.
"""

import importlib
import pkgutil

from vtab_eval.selection.base import SELECTORS, Context, SelectionResult, Selector, best, register
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

# Every module of this folder registers its selectors when imported: found here rather
# than listed, so that adding a selector is adding its file (and its test), nothing else.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def selector_class(name: str) -> type[Selector]:
    """The selector registered as `name`; an unknown name is a one-line ValueError."""
    return SELECTORS[name]


def get_selector(name: str, **kwargs) -> Selector:
    return selector_class(name)(**kwargs)


def table_order() -> list[str]:
    """Every selector's name in the tables' row order (the paper's Table 1)."""
    return sorted(SELECTORS, key=lambda name: SELECTORS[name].table_row)


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
    "register",
    "selector_class",
    "table_order",
    "loo_accuracy",
    "loo_neighbors",
]

"""NCTI's terms on geometries whose values are known, and its pool normalisation."""

import numpy as np
import pytest

from tests.vtab_eval.proxies.conftest import clustered
from vtab_eval.selection import ncti


def test_a_collapsed_simplex_has_perfect_geometry_and_no_variability():
    # Three classes at the vertices of an equilateral triangle, two images each, with a
    # tiny spread: a simplex ETF with nearly collapsed classes.
    vertices = np.array([[1.0, 0.0], [-0.5, np.sqrt(3) / 2], [-0.5, -np.sqrt(3) / 2]])
    offsets = 1e-4 * np.array([[1.0, 0.0], [-1.0, 0.0]])
    x = (vertices[:, None] + offsets[None]).reshape(6, 2)
    terms = ncti.ncti_terms(x, np.repeat([0, 1, 2], 2))
    assert terms["geometry"] == pytest.approx(1.0, rel=1e-9)
    assert terms["variability"] == pytest.approx(0.0, abs=1e-7)
    assert terms["nearest_centre"] == pytest.approx(0.0, abs=1e-9)


def test_scores_are_min_max_normalised_sums():
    terms = {
        "a": {"variability": -1.0, "geometry": 0.5, "nearest_centre": -2.0},
        "b": {"variability": -3.0, "geometry": 0.9, "nearest_centre": -1.0},
        "c": {"variability": -2.0, "geometry": 0.5, "nearest_centre": -1.5},
    }
    assert ncti.normalised_sum(terms) == pytest.approx({"a": 1.0, "b": 2.0, "c": 1.0})
    assert ncti.normalised_sum({"a": terms["a"]}) == {"a": 0.0}


def test_tighter_classes_collapse_more():
    tight, labels = clustered(spread=0.1)
    loose, _ = clustered(spread=2.0)
    t, lo = ncti.ncti_terms(tight, labels), ncti.ncti_terms(loose, labels)
    assert t["variability"] > lo["variability"] and t["nearest_centre"] > lo["nearest_centre"]

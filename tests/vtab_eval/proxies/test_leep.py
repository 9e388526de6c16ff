"""LEEP and NCE of a source head by hand, and on the tiny pool's upstream classifier."""

import math

import numpy as np
import pytest

from vtab_eval import features
from vtab_eval.pool import expert_pool
from vtab_eval.selection import Context, get_selector, leep


def test_nce_by_hand():
    # Source argmax z = [0, 0, 1, 1], labels [0, 1, 1, 1]: p(y|z=0) = 1/2 each,
    # p(y=1|z=1) = 1. NCE = 2/4 * log(1/2) + 2/4 * log(1).
    logits = np.array([[2.0, 0.0], [3.0, 1.0], [0.0, 1.0], [0.0, 4.0]])
    assert leep.nce(logits, np.array([0, 1, 1, 1])) == pytest.approx(0.5 * math.log(0.5))


def test_leep_of_a_head_sure_of_one_source_label_per_class_is_zero():
    logits = np.array([[50.0, 0.0], [50.0, 0.0], [0.0, 50.0], [0.0, 50.0]])
    assert leep.leep(logits, np.array([0, 0, 1, 1])) == pytest.approx(0.0, abs=1e-12)
    assert leep.leep(logits, np.array([0, 1, 0, 1])) == pytest.approx(math.log(0.5))


@pytest.mark.parametrize("name", ["leep", "nce"])
def test_only_the_baseline_is_scored_through_the_classifier(name, hub_root, red_task, tmp_path):
    pool = expert_pool.open_pool(str(hub_root))
    ctx = Context(pool, features.FeatureStore(tmp_path, image_size=8))
    result = get_selector(name).select(red_task, ctx)
    baseline = pool.baseline.id
    assert math.isfinite(result.scores[baseline]) and result.pick == baseline
    assert all(math.isinf(v) for k, v in result.scores.items() if k != baseline)

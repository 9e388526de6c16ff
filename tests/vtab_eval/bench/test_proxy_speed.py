"""The proxy timing bench: its synthetic pool, its table, and one timed child."""

import numpy as np
import pytest

from vtab_eval.bench import proxy_speed
from vtab_eval.configs import proxy_speed as proxy_speed_config


def test_synthetic_features_have_the_pools_shape_and_dead_units():
    features, labels = proxy_speed.synthetic_features(3, 1000, 512, 10, seed=0)
    assert features.shape == (1000, 512) and features.dtype == np.float32
    assert np.bincount(labels).tolist() == [100] * 10
    assert features.min() == 0 and 0 < np.mean(np.all(features == 0, axis=0)) < 0.15
    again, _ = proxy_speed.synthetic_features(3, 1000, 512, 10, seed=0)
    np.testing.assert_array_equal(features, again)


def _run(cpu, scores, elapsed=1.0, workers=1):
    return {
        "cpu_seconds": cpu,
        "wall_seconds": cpu,
        "scores": scores,
        "elapsed_seconds": elapsed,
        "workers": workers,
    }


def test_summary_gives_medians_speed_ups_and_score_changes():
    before = [_run({"a": 4.0}, {"a": {"m": 2.0}}), _run({"a": 6.0}, {"a": {"m": 2.0}})]
    after = [
        _run({"a": 1.0}, {"a": {"m": 2.0 + 2e-9}}, elapsed=0.5, workers=2),
        _run({"a": 1.0}, {"a": {"m": 0.0}}, elapsed=0.3, workers=2),
    ]
    summary = proxy_speed.summarise({"before": before, "after": after})
    row = summary["proxies"]["a"]
    assert row["before"] == 5.0 and row["after"] == 1.0 and row["ratio"] == 5.0
    assert row["score_difference"] == pytest.approx(1e-9)  # the first round's scores
    text = proxy_speed.markdown(summary, proxy_speed_config.get_config("smoke"))
    assert "| a | 5.000 | 1.000 | 5.0x | 1.0e-09 |" in text
    assert "| elapsed (wall s, the whole call) | 1.00 | 0.40 | 2.5x |  |" in text
    assert "side by side: before 1, after 2" in text


def test_one_tree_is_timed_in_a_child(tmp_path):
    config = proxy_speed_config.get_config("smoke")
    config.proxies = "knn,logme"
    summary = proxy_speed.execute(config, str(tmp_path), log=lambda m: None)
    assert summary["trees"] == ["after"] and summary["workers"] == {"after": 1}
    assert summary["elapsed"]["after"] > 0
    assert set(summary["proxies"]) == {"knn", "logme", proxy_speed.SHARED}
    assert (tmp_path / "proxy_speed.md").read_text().startswith("3 modules x 60 images")


def test_the_same_tree_is_timed_with_two_workers_against_one(tmp_path):
    config = proxy_speed_config.get_config("smoke")
    config.proxies = "knn,hscore"
    config.baseline, config.workers = str(proxy_speed.Path(proxy_speed.__file__).parents[2]), 2
    summary = proxy_speed.execute(config, str(tmp_path), log=lambda m: None)
    assert summary["workers"] == {"before": 1, "after": 2}
    assert all(row["score_difference"] < 1e-9 for row in summary["proxies"].values()
               if row["score_difference"] is not None)  # fmt: skip

"""The kNN kernel benchmark at a toy size: the implementations agree with the selector's
kNN, the JSON is written, and a rerun measures only what is missing or changed."""

import json

import numpy as np
import pytest

from vtab_eval.bench import knn_kernel, knn_kernel_table
from vtab_eval.selection import knn

HAVE_FAISS = knn_kernel.faiss_available()
IMPLS = ("ours", "sklearn") + (("faiss",) if HAVE_FAISS else ())
# In this process (no child Pythons), each implementation timed once after a first call.
QUICK = {"min_seconds": 0.0, "max_repeats": 2, "isolate": False}
NO_FAISS = "faiss is not installed: pip install faiss-cpu (the bench extra)"


def _must_not_measure(*args, **kwargs):
    raise AssertionError(f"measured again: {args}")


def test_implementations_agree_and_a_rerun_skips_what_is_done(tmp_path, monkeypatch):
    output = tmp_path / "bench" / "knn.json"
    results = knn_kernel.run(output, [200], [16], IMPLS, **QUICK)
    found = results["measurements"]
    assert sorted(found) == sorted(f"{impl}/n=200/d=16" for impl in IMPLS)
    x, y = knn_kernel.make_data(200, 16, classes=10, seed=0)
    assert x.dtype == np.float32 and x.shape == (200, 16)
    expected = knn.loo_accuracy(x, y)  # what the selector computes
    assert 0.0 < expected < 0.5  # random labels: near chance, so agreement is not trivial
    assert {e["accuracy"] for e in found.values()} == {expected}
    pairs = results["comparisons"]["n=200/d=16"]
    assert ("ours/faiss" in pairs) == HAVE_FAISS and "ours/sklearn" in pairs
    for pair, c in pairs.items():
        assert c["neighbor_disagreements"] == 0 and c["same_accuracy"] and c["same_run"], pair
        assert c["time_ratio"] > 0
    ours = found["ours/n=200/d=16"]
    assert ours["deterministic"] and ours["timed_calls"] >= 1
    assert ours["settings"]["knn_source_sha1"] and not ours["isolated"]
    assert json.loads(output.read_text()) == results
    assert knn_kernel.neighbors_path(output, "ours", 200, 16).exists()

    table = knn_kernel_table.to_markdown(results)
    assert table.startswith("| N | D | ours s | sklearn s | faiss s | ours/sklearn | ours/faiss")
    assert "| 200 | 16 | " in table and "agree on every neighbour" in table

    # A rerun with the same settings measures nothing; changed settings are measured.
    monkeypatch.setattr(knn_kernel, "measure", _must_not_measure)
    assert knn_kernel.run(output, [200], [16], IMPLS, **QUICK) == results
    with pytest.raises(AssertionError, match="measured again"):
        knn_kernel.run(output, [200], [16], ["sklearn"], seed=1, **QUICK)


@pytest.mark.parametrize("impl", IMPLS)
def test_duplicates_are_valid_neighbours_but_a_point_never_is_its_own(impl):
    # Points 0-2 coincide: each one's neighbour is another of them, at distance 0.
    x = np.array([[0, 0], [0, 0], [0, 0], [5, 5], [9, 9]], np.float32)
    nn = knn_kernel.load(impl)(x)
    assert nn.dtype == np.int64 and nn.shape == (5,)
    assert all(nn[i] != i and nn[i] < 3 for i in range(3))
    assert nn[3] == 4 and nn[4] == 3


def test_drop_self_keeps_the_first_other_point():
    found = np.array([[0, 2], [0, 1], [1, 0], [0, 1]])  # rows 1-3: duplicates come first
    np.testing.assert_array_equal(knn_kernel.drop_self(found), [2, 0, 1, 0])


def test_faiss_agrees_with_ours():
    pytest.importorskip("faiss", reason=NO_FAISS)
    x, _ = knn_kernel.make_data(300, 8, classes=10, seed=3)
    np.testing.assert_array_equal(knn_kernel.load("faiss")(x), knn_kernel.load("ours")(x))


def test_a_measurement_in_its_own_process_reports_its_peak_memory(tmp_path):
    output = tmp_path / "knn.json"
    results = knn_kernel.run(output, [100], [8], ["sklearn"], min_seconds=0.0, max_repeats=1)
    entry = results["measurements"]["sklearn/n=100/d=8"]
    assert entry["isolated"] and entry["peak_mib"] >= entry["baseline_mib"] > 0
    assert entry["accuracy"] == knn.loo_accuracy(*knn_kernel.make_data(100, 8, 10, 0))


def test_unknown_implementations_and_missing_faiss_are_named(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="unknown implementations"):
        knn_kernel.run(tmp_path / "k.json", [10], [2], ["annoy"])
    monkeypatch.setattr(knn_kernel, "faiss_available", lambda: False)
    with pytest.raises(RuntimeError, match="pip install faiss-cpu"):
        knn_kernel.run(tmp_path / "k.json", [10], [2], ["faiss"])

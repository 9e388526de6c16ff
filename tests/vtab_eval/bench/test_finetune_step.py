"""The fine-tuning throughput benchmark's code path, at a tiny size (figures are the
benchmark's to print, not a test's to judge)."""

from vtab_eval.bench import finetune_step

RED = "tests/experts/bit/tiny/tiny_upstream/red/1"


def test_the_benchmark_measures_both_sides(hub_root):
    figures = finetune_step.measure(str(hub_root / RED), 8, batch=4, steps=3, rounds=1)
    assert figures["finetuner"] > 0 and figures["bare"] > 0
    assert figures["ratio"] == figures["finetuner"] / figures["bare"]

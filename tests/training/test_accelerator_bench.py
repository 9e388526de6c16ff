"""The upstream accelerator benchmark's code path at the smoke size (figures are the
benchmark's to print, not a test's); the downstream one's is in
tests/vtab_eval/bench/test_accelerator.py."""

import subprocess
import sys
from pathlib import Path

import pytest

from experts.bench import accelerator
from experts.training import distribute
from fanout.bench.accelerator_table import table

REPO = Path(__file__).resolve().parents[2]


def test_every_upstream_step_is_measured_per_device():
    rows = [
        accelerator.measure(
            kind, "smoke", distribute.make_strategy("default"), steps=2, nodes=12, experts=3
        )
        for kind in ("baseline", "full", "adapter")
    ]
    assert [r["job"] for r in rows] == ["baseline", "full", "adapter"]
    for row in rows:
        assert row["replicas"] == 1 and row["images_per_second"] > 0
        assert row["per_device"] == pytest.approx(row["images_per_second"])
    assert "| adapter | r14x0.125 at 32px | float32 | 8 |" in table(rows)


def test_the_precision_is_the_presets_unless_given():
    strategy = distribute.make_strategy("default")
    row = accelerator.measure(
        "baseline", "smoke", strategy, steps=2, nodes=12, experts=3, precision="mixed_bfloat16"
    )
    assert row["precision"] == "mixed_bfloat16" and row["images_per_second"] > 0
    assert "| baseline | r14x0.125 at 32px | mixed_bfloat16 | 8 |" in (table([row]))


def test_the_binary_runs_under_a_mirrored_strategy():
    # Its own process: two MirroredStrategy objects in one process share collective
    # instance keys, and the training tests hold one already.
    done = subprocess.run(
        [sys.executable, "-m", "experts.bench.accelerator", "--preset=smoke",
         "--strategy=mirrored", "--steps=2", "--nodes=12", "--experts=3", "--jobs=adapter",
         "--precision=mixed_float16"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    # float16's loss scaling runs under a MirroredStrategy (replica context) for real.
    assert "upstream train steps: strategy mirrored, mixed_float16" in done.stdout
    assert "| adapter | r14x0.125 at 32px | mixed_float16 | 8 | 1 |" in done.stdout

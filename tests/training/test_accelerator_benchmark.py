"""The accelerator benchmark's code path at the smoke size, upstream and downstream
(figures are the benchmark's to print, not a test's)."""

import subprocess
import sys
from pathlib import Path

import pytest

from experts.training import accelerator_benchmark, distribute

REPO = Path(__file__).resolve().parents[2]


def test_every_upstream_step_is_measured_per_device():
    rows = [
        accelerator_benchmark.measure(
            kind, "smoke", distribute.make_strategy("default"), steps=2, nodes=12, experts=3
        )
        for kind in ("baseline", "full", "adapters")
    ]
    assert [r["job"] for r in rows] == ["baseline", "full", "adapters"]
    for row in rows:
        assert row["replicas"] == 1 and row["images_per_second"] > 0
        assert row["per_device"] == pytest.approx(row["images_per_second"])
    assert "| adapters | r14x0.125 at 32px | float32 | 8 |" in accelerator_benchmark.table(rows)


def test_the_precision_is_the_presets_unless_given():
    strategy = distribute.make_strategy("default")
    row = accelerator_benchmark.measure(
        "baseline", "smoke", strategy, steps=2, nodes=12, experts=3, precision="mixed_bfloat16"
    )
    assert row["precision"] == "mixed_bfloat16" and row["images_per_second"] > 0
    assert "| baseline | r14x0.125 at 32px | mixed_bfloat16 | 8 |" in (
        accelerator_benchmark.table([row])
    )


def test_the_binary_runs_under_a_mirrored_strategy():
    # Its own process: two MirroredStrategy objects in one process share collective
    # instance keys, and the training tests hold one already.
    done = subprocess.run(
        [sys.executable, "-m", "experts.training.accelerator_benchmark", "--preset=smoke",
         "--strategy=mirrored", "--steps=2", "--nodes=12", "--experts=3", "--jobs=adapters",
         "--precision=mixed_float16"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    # float16's loss scaling runs under a MirroredStrategy (replica context) for real.
    assert "upstream train steps: strategy mirrored, mixed_float16" in done.stdout
    assert "| adapters | r14x0.125 at 32px | mixed_float16 | 8 | 1 |" in done.stdout


def test_the_downstream_binary_fine_tunes_on_two_replicas():
    """The fine-tuning step and feature extraction (hub_export.accelerator_benchmark),
    in its own process, with the CPU split in two before TensorFlow starts."""
    script = (
        "from fanout import distribute\n"
        "distribute.split_cpu(2)\n"
        "from absl import app\n"
        "from hub_export import accelerator_benchmark as b\n"
        "b.define_flags()\n"
        "app.run(b.main, argv=['b', '--preset=smoke', '--strategy=mirrored', '--steps=2',\n"
        "    '--train_images=16', '--feature_batches=1', '--rounds=1'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "downstream steps: strategy mirrored for fine-tuning" in done.stdout
    rows = {line.split(" | ")[0]: line.split(" | ") for line in done.stdout.splitlines()}
    [_, model, precision, batch, replicas, total, per_device] = rows["| fine-tuning step"]
    assert (model, precision, batch, replicas) == ("r14x0.125 at 32px", "float32", "8", "2")
    total, per_device = (float(x.strip(" |").replace(",", "")) for x in (total, per_device))
    assert total > 0 and abs(per_device - total / 2) <= 1  # figures rounded to integers
    [_, model, _, batch, replicas, *_] = rows["| hub feature extraction"]
    assert (model, batch, replicas) == ("r14x0.125 at 32px", "256", "1")  # one device

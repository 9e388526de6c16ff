"""The accelerator benchmark's code path at the smoke size, on one device and mirrored
over the two logical CPUs (figures are the benchmark's to print, not a test's)."""

import pytest

from experts.training import accelerator_benchmark, distribute


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_every_upstream_step_is_measured_per_device(strategy):
    devices = distribute.make_strategy(strategy)
    rows = [
        accelerator_benchmark.measure(kind, "smoke", devices, steps=2, nodes=12, experts=3)
        for kind in ("baseline", "full", "adapters")
    ]
    assert [r["job"] for r in rows] == ["baseline", "full", "adapters"]
    for row in rows:
        assert row["replicas"] == (2 if strategy == "mirrored" else 1)
        assert row["per_device"] == pytest.approx(row["images_per_second"] / row["replicas"])
        assert row["images_per_second"] > 0
    assert "| adapters | r14x0.125 at 32px | 8 |" in accelerator_benchmark.table(rows)

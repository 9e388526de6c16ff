"""The accelerator tables' one format: images/s per device, one row per job.

``experts.bench.accelerator`` (the upstream train steps) and
``vtab_eval.bench.accelerator`` (the fine-tuning step and feature extraction) print
their rows through ``table``, so ``make bench-accelerator``'s two tables have the same
columns. It lives in ``fanout``, which both packages may import.
"""

from __future__ import annotations

HEADER = "| job | model | precision | global batch | replicas | img/s | img/s per device |"


def table(rows: list[dict]) -> str:
    """Rows with ``job``, ``model``, ``precision``, ``global_batch``, ``replicas``,
    ``images_per_second`` and ``per_device``, as a Markdown table."""
    lines = [HEADER, "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['job']} | {r['model']} | {r['precision']} | {r['global_batch']} | "
            f"{r['replicas']} | "
            f"{r['images_per_second']:,.0f} | {r['per_device']:,.0f} |"
        )
    return "\n".join(lines)

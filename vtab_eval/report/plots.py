"""The figures of the reports, drawn with matplotlib (optional: without it a report
has its tables and no figures, and says so in the log)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from absl import logging

from vtab_eval import files


def pyplot(path: Path):
    """matplotlib's pyplot on a file-only backend, or None (with a warning naming the
    figure not drawn) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logging.warning("matplotlib is not installed: no %s", path)
        return None
    return plt


def save(plt, fig, path: Path, dpi: int = 130) -> Path:
    """Writes the figure as a PNG atomically and closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return files.write_bytes(path, buffer.getvalue())


def short_task(spec: str) -> str:
    """`mini_dsprites(predicted_attribute="label_x_position",num_classes=16)` ->
    `mini_dsprites/x_position`: the name plus the first argument's value."""
    name, _, args = spec.partition("(")
    if not args:
        return name
    first = args.rstrip(")").split(",")[0].split("=")[-1].strip("\"'")
    return f"{name}/{first.removeprefix('label_')}"


def proxy_heatmap(
    scores: dict[str, dict[str, float]], path: Path, label: str = "kNN accuracy"
) -> Path | None:
    """A proxy's score (`label`, an accuracy in [0, 1]) per expert and task, relative to
    B's per task when B is there."""
    plt = pyplot(path)
    if plt is None or not scores:
        return None
    task_names = list(scores)
    experts = sorted({e for s in scores.values() for e in s})
    grid = np.array([[scores[t].get(e, np.nan) for t in task_names] for e in experts])
    # Per task relative to the baseline, on a diverging scale around zero: one absolute
    # scale over tasks of 20% and 90% accuracy hides every difference within a task.
    base = [e for e in experts if e.endswith("/baseline")]
    if base:  # in points, as the cells print them
        grid = 100 * (grid - grid[experts.index(base[0])][None, :])
    limit = max(1.0, float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(task_names), 1.5 + 0.28 * len(experts)))
    cmap = "RdBu" if base else "viridis"
    vmin, vmax = (-limit, limit) if base else (None, None)
    image = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(
        range(len(task_names)),
        [short_task(t) for t in task_names],
        rotation=60,
        ha="right",
        fontsize=7,
    )
    ax.set_yticks(range(len(experts)), experts, fontsize=6)
    if grid.size <= 600:
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                text = f"{v:+.0f}" if base else f"{100 * v:.0f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=5)
    fig.colorbar(image, ax=ax, label=f"{label} minus B's (points)" if base else label)
    ax.set_title(f"{label} per expert and task")
    return save(plt, fig, path)


def proxy_scatter(by_proxy: dict[str, dict[str, dict]], path: Path) -> Path | None:
    """Each proxy's score (one panel per proxy, keyed by its score's label) against
    fine-tuned accuracy per fine-tuned expert, a colour per task."""
    plt = pyplot(path)
    drawn = {label: c for label, c in by_proxy.items() if any(t["points"] for t in c.values())}
    if plt is None or not drawn:
        return None
    fig, axes = plt.subplots(1, len(drawn), figsize=(7.5 * len(drawn), 5.5), squeeze=False)
    for ax, (label, correlations) in zip(axes[0], drawn.items(), strict=True):
        _scatter_panel(ax, label, correlations)
    return save(plt, fig, path)


def _scatter_panel(ax, label: str, correlations: dict[str, dict]) -> None:
    for task, c in correlations.items():
        if not c["points"]:
            continue
        tau = "n/a" if math.isnan(c["tau"]) else f"{c['tau']:+.2f}"
        xs, ys = [p[1] for p in c["points"]], [p[2] for p in c["points"]]
        ax.scatter(xs, ys, s=18, label=f"{short_task(task)} (τ {tau}, n={len(xs)})")
    ax.set_xlabel(f"{label} (proxy)")
    ax.set_ylabel("fine-tuned test accuracy (median of runs)")
    ax.set_title("Proxy score against fine-tuned accuracy, Kendall's τ per task")
    ax.legend(fontsize=6, loc="best")
    ax.grid(alpha=0.3)

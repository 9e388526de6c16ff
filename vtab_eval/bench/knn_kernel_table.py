"""The kNN kernel benchmark's results (knn_kernel.py's JSON) as a Markdown table."""

from __future__ import annotations

from collections.abc import Iterable

IMPLS = ("ours", "sklearn", "faiss")


def key(impl: str, n: int, d: int) -> str:
    """A measurement's key in the results."""
    return f"{impl}/n={n}/d={d}"


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return format(value, ".0f" if value >= 100 else ".1f" if value >= 10 else ".3g")


def _grid(results: dict) -> Iterable[tuple[int, int]]:
    return sorted({(e["n"], e["d"]) for e in results["measurements"].values()})


def to_markdown(results: dict) -> str:
    """The results as a Markdown table, one row per (N, D), and a line per pair of
    implementations that disagree on some neighbour."""
    found = results["measurements"]
    head = (
        "| N | D | ours s | sklearn s | faiss s | ours/sklearn | ours/faiss "
        "| ours peak MiB | sklearn peak MiB | faiss peak MiB |"
    )
    lines = [head, "|" + "---:|" * head.count(" | ") + "---:|"]
    notes = []
    for n, d in _grid(results):
        entry = {impl: found.get(key(impl, n, d)) for impl in IMPLS}
        seconds = {impl: e and e["seconds"] for impl, e in entry.items()}
        peak = {impl: e and e["peak_above_baseline_mib"] for impl, e in entry.items()}
        pairs = results["comparisons"].get(f"n={n}/d={d}", {})
        ratio = {pair: c["time_ratio"] for pair, c in pairs.items()}
        cells = [f"{n:,}", str(d)]
        cells += [_seconds(seconds[impl]) for impl in IMPLS]
        cells += [_cell(ratio.get(pair), ".2f") for pair in ("ours/sklearn", "ours/faiss")]
        cells += [_cell(peak[impl], ",.0f") for impl in IMPLS]
        lines.append("| " + " | ".join(cells) + " |")
        for pair, c in pairs.items():
            if c["neighbor_disagreements"] or not c["same_accuracy"]:
                notes.append(
                    f"N={n:,}, D={d}, {pair}: {c['neighbor_disagreements']} neighbours and "
                    f"{c['label_disagreements']} neighbour labels differ."
                )
    lines.append("")
    lines.append(
        "Seconds: leave-one-out 1-NN and its accuracy on float32 embeddings (ours after a "
        "tracing call). Peak: the process's maximum resident memory above its size after "
        "the imports, so it includes the N x D x 4-byte input."
    )
    lines.append(" ".join(notes) if notes else "All implementations agree on every neighbour.")
    return "\n".join(lines) + "\n"

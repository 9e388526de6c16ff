r"""The specialisation benchmark: kNN accuracy of every pool module on every expert's probe.

Run by ``vtab_eval.main --config.probes=<probe folder>`` beside the tasks (each module is
loaded once for both), or alone by ``python -m vtab_eval.bench.probes``.

A probe (written upstream, ``experts/data/embedded/probes.py``) is a small task from one expert
node's own domain whose classes no upstream job has seen, labelled by class. The
benchmark embeds every probe image once per module (the probes share images, so the
union is embedded and cached like any task split), computes the leave-one-out 1-NN
accuracy of each module on each probe, and writes to ``--output_dir``:

* ``probes.json``: the module x probe matrix, and per probe B's accuracy (a probe is
  ``saturated`` outside 25-85%), each own expert's margin over B and its rank;
* ``probes.md``: the per-probe table and the summary against the targets;
* ``probes.png``: the matrix as accuracy minus B's, on a diverging colour scale, own
  experts outlined.

The targets are the project's bar for "experts that are experts": a full expert beats
B by at least 5 points on 80% of its probes and ranks first on 50%; an adapter expert
beats B by at least 3 points on 60%.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import logging

from vtab_eval import files
from vtab_eval.features import FeatureStore
from vtab_eval.pool import expert_pool as pool_lib
from vtab_eval.report import plots
from vtab_eval.selection.knn import loo_accuracy
from vtab_eval.tasks import base, folder

MANIFEST = "probes.json"
SATURATION = (0.25, 0.85)
TARGETS = {  # kind -> (margin in points, share of own probes, share ranked first)
    "full": (5.0, 0.8, 0.5),
    "adapter": (3.0, 0.6, None),
}


class ProbeImages:
    """Every distinct image of a probe folder as one task-like split (``all``), so the
    feature store embeds and caches each image once per module; label = image index."""

    def __init__(self, root: str):
        self.root = Path(root)
        manifest = files.read_json(self.root / MANIFEST)
        if not isinstance(manifest, dict) or "probes" not in manifest:
            raise ValueError(f"{self.root / MANIFEST}: not a probe manifest (no 'probes')")
        self.manifest = manifest
        self.image_size = int(manifest.get("image_size", 32))
        by_digest: dict[str, int] = {}
        self.paths: list[str] = []
        self.probes: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # node -> (rows, labels)
        for probe in manifest["probes"]:
            path = self.root / probe["path"]
            classes, entries = folder.list_image_folder(str(path))
            rows, labels = [], []
            for rel, label in entries:
                full = str(path / rel)
                digest = hashlib.sha256(Path(full).read_bytes()).hexdigest()
                if digest not in by_digest:
                    by_digest[digest] = len(self.paths)
                    self.paths.append(full)
                rows.append(by_digest[digest])
                labels.append(label)
            self.probes[probe["node"]] = (np.array(rows), np.array(labels))
        digest = hashlib.sha1("\n".join(sorted(by_digest)).encode()).hexdigest()[:12]
        self.spec = f"probes({digest})"
        self.key = self.spec  # its content's digest: what names its cached features

    def as_dataset(self, split: str) -> tf.data.Dataset:
        if split != "all":
            raise ValueError(f"probe images have one split, 'all', not {split!r}")
        ds = tf.data.Dataset.from_tensor_slices(
            (self.paths, tf.range(len(self.paths), dtype=tf.int64))
        )

        def load(path, index):
            image = tf.io.decode_png(tf.io.read_file(path), channels=3)
            return base.to_rgb_uint8(image), index

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def own_experts(pool: pool_lib.Pool, node: str) -> dict[str, str]:
    """kind -> module id of the pool's full and adapter experts of ``node``."""
    return {e.kind: e.id for e in pool.experts if e.kind in TARGETS and e.info.get("node") == node}


def probe_rows(matrix: dict[str, dict[str, float]], pool: pool_lib.Pool) -> list[dict]:
    """Per probe: B's accuracy, whether it is saturated, and each own expert's margin over
    B (points) and rank in the pool (1 = best; ties share the better rank)."""
    baseline = pool.baseline.id
    rows = []
    for node in next(iter(matrix.values())):
        scores = {m: matrix[m][node] for m in matrix}
        b = scores[baseline]
        row = {"node": node, "baseline": b, "saturated": not SATURATION[0] <= b <= SATURATION[1]}
        for kind, module in own_experts(pool, node).items():
            row[kind] = {
                "module": module,
                "accuracy": scores[module],
                "margin": 100 * (scores[module] - b),
                "rank": 1 + sum(s > scores[module] for s in scores.values()),
            }
        rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per kind: how many own probes meet the margin (and rank) target."""
    out = {}
    for kind, (margin, share, first_share) in TARGETS.items():
        mine = [r[kind] for r in rows if kind in r]
        if not mine:
            continue
        beat = sum(m["margin"] >= margin for m in mine)
        entry = {"probes": len(mine), "beat": beat, "margin": margin, "target_share": share}
        entry["median_margin"] = float(np.median([m["margin"] for m in mine]))
        entry["met"] = beat >= share * len(mine)
        if first_share is not None:
            entry["first"] = sum(m["rank"] == 1 for m in mine)
            entry["target_first_share"] = first_share
            entry["met"] = entry["met"] and entry["first"] >= first_share * len(mine)
        out[kind] = entry
    return out


def summary_line(summary: dict[str, dict]) -> str:
    """One sentence for the demo's report."""
    parts = []
    for kind, s in summary.items():
        text = (
            f"{kind} experts beat B by >= {s['margin']:g} kNN points on {s['beat']}/"
            f"{s['probes']} own probes (target {100 * s['target_share']:.0f}%)"
        )
        if "first" in s:
            text += f", rank first on {s['first']}/{s['probes']} (target 50%)"
        text += (
            f", median margin {s['median_margin']:+.1f}; target {'met' if s['met'] else 'NOT met'}"
        )
        parts.append(text)
    return "Specialisation probes: " + "; ".join(parts) + "."


def compute_matrix(pool: pool_lib.Pool, images: ProbeImages, store: FeatureStore) -> dict:
    """module id -> node -> leave-one-out 1-NN accuracy."""
    matrix = {}
    for i, module in enumerate(pool.experts):
        feats, _, _ = store.outputs(module.handle, images, "all")
        matrix[module.id] = {
            node: loo_accuracy(feats[rows], labels)
            for node, (rows, labels) in images.probes.items()
        }
        logging.info("probes: %d/%d modules done (%s)", i + 1, len(pool.experts), module.id)
    return matrix


def _own_cell(entry: dict | None) -> str:
    if entry is None:
        return "-"
    return f"{100 * entry['accuracy']:.1f} ({entry['margin']:+.1f}, #{entry['rank']})"


def markdown(rows: list[dict], summary: dict, images: ProbeImages, pool_size: int) -> str:
    sizes = {p["node"]: p for p in images.manifest["probes"]}
    lines = [
        "# Specialisation probes",
        "",
        summary_line(summary),
        "",
        f"Leave-one-out 1-NN accuracy (%) of {pool_size} modules on each expert node's "
        "probe: held-out classes of that node, never seen upstream. Own experts: "
        "accuracy (margin over B in points, rank in the pool).",
        "",
        "| probe | images | classes | B | full expert | adapter expert |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        size = sizes[r["node"]]
        flag = " (saturated)" if r["saturated"] else ""
        lines.append(
            f"| {r['node']} | {size['images']} | {size['classes']} | "
            f"{100 * r['baseline']:.1f}{flag} | {_own_cell(r.get('full'))} | "
            f"{_own_cell(r.get('adapter'))} |"
        )
    for node, why in images.manifest.get("skipped", {}).items():
        lines.append(f"| {node} | - | - | no probe: {why} | - | - |")
    return "\n".join(lines) + "\n"


def plot(matrix: dict, rows: list[dict], baseline: str, path: Path) -> Path | None:
    """The matrix relative to B (points), diverging around zero; own experts outlined."""
    plt = plots.pyplot(path)
    if plt is None:
        return None
    modules, nodes = list(matrix), [r["node"] for r in rows]
    delta = np.array([[100 * (matrix[m][n] - matrix[baseline][n]) for n in nodes] for m in modules])
    limit = max(1.0, float(np.abs(delta).max()))
    fig, ax = plt.subplots(figsize=(2 + 0.35 * len(nodes), 2 + 0.22 * len(modules)))
    image = ax.imshow(delta, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    for j, r in enumerate(rows):
        for kind in TARGETS:
            if kind in r:
                i = modules.index(r[kind]["module"])
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.5))
    ax.set_xticks(range(len(nodes)), nodes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(modules)), modules, fontsize=6)
    ax.set_xlabel("probe (held-out classes of an expert node)")
    fig.colorbar(image, ax=ax, label="kNN accuracy minus B's (points)")
    fig.tight_layout()
    return plots.save(plt, fig, path, dpi=110)


def run(pool_spec: str, probes_dir: str, output_dir: str, cache_dir: str, batch_size: int):
    """Computes and writes the benchmark (module docstring); returns the record."""
    pool = pool_lib.open_pool(pool_spec)
    images = ProbeImages(probes_dir)
    store = FeatureStore(cache_dir, images.image_size, batch_size)
    return write(pool, images, store, output_dir)


def write(pool: pool_lib.Pool, images: ProbeImages, store: FeatureStore, output_dir) -> dict:
    """The benchmark from ``store`` (its cached features, or new forward passes) into
    ``output_dir``; returns the record written to ``probes.json``."""
    matrix = compute_matrix(pool, images, store)
    rows = probe_rows(matrix, pool)
    summary = summarise(rows)
    out = Path(output_dir)
    record = {"matrix": matrix, "probes": rows, "summary": summary, "baseline": pool.baseline.id}
    record["summary_line"] = summary_line(summary)
    record["manifest"] = images.manifest
    files.write_json(out / "probes.json", record)
    files.write_text(out / "probes.md", markdown(rows, summary, images, len(pool.experts)))
    plot(matrix, rows, pool.baseline.id, out / "probes.png")
    return record

"""Specialisation probes: one small task per expert node, from classes no upstream job sees.

The embedded plan holds a share of its classes out of the upstream (``plan.py``,
``is_probe_class``). For every expert node, the probe is those held-out classes below
it, labelled by class, capped near ``max_images`` images. Each class shows as
``per_class`` renderings in different styles (two font designs of a character, or an
emoji in each of its two art styles), so leave-one-out 1-NN must recognise a class it
has never seen across styles: with several layouts of one emoji bitmap or near-identical
faces it would only match copies, and every model would score near 100%. An expert that learned its domain
should tell unseen classes of that domain apart better than the generic model: the
kNN matrix of every module on every probe (``vtab_eval.bench.probes``) measures that,
as the paper's Appendix C analysis does.

The probes are written as image folders, one per node, beside a manifest::

    <out_dir>/probes.json                         # {"probes": [{"node", "path", ...}]}
    <out_dir>/<NN>-<node slug>/<class slug>/<k>.png

so ``vtab_eval`` reads them without importing ``experts/`` (DESIGN.md). The whole
folder is written under a temporary name and renamed, so a half-written set of
probes is never visible. An earlier folder is replaced only when this command wrote it
(``fanout.files``: it carries the command's marker) or it is empty: ``out_dir`` is a
user's flag, and may name a folder of theirs.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Sequence

from PIL import Image

from experts.data.embedded import plan as embedded
from fanout import files

OWNER = "experts.data.build_upstream"

MANIFEST = "probes.json"
MANIFEST_VERSION = 1
DEFAULT_MAX_IMAGES = 1000
DEFAULT_PER_CLASS = 3


def classes_below(plan: embedded.Plan, node: str) -> list[str]:
    """The held-out classes under ``node``, in a stable pseudo-random order (a hash of
    the name), so a capped probe takes an even sample of the node's classes."""
    if plan.full_hierarchy is None or node not in plan.full_hierarchy:
        return []
    below = [lab for lab in plan.probe_labels if node in plan.full_hierarchy.ancestors(lab)]
    return sorted(below, key=lambda lab: embedded._hash01("probe-order/" + lab))


def _one_per_style(items: Sequence[embedded.Item], k: int) -> list[embedded.Item]:
    """Up to ``k`` of a class's items, one per style (face, emoji style) first, in plan
    order (the plan lists a character's faces most diverse first)."""
    by_style: dict[str, list[embedded.Item]] = {}
    for item in items:
        by_style.setdefault(item.style, []).append(item)
    rounds = max((len(v) for v in by_style.values()), default=0)
    ordered = [v[r] for r in range(rounds) for v in by_style.values() if r < len(v)]
    return ordered[:k]


def plan_probe(
    plan: embedded.Plan, node: str, max_images: int, per_class: int = DEFAULT_PER_CLASS
) -> list[embedded.Item]:
    """The items of one node's probe: whole classes of ``per_class`` images in different
    styles until the next class would pass ``max_images``."""
    by_label: dict[str, list[embedded.Item]] = {}
    for item in plan.probe_items:
        by_label.setdefault(plan.probe_labels[item.label], []).append(item)
    chosen: list[embedded.Item] = []
    for label in classes_below(plan, node):
        group = _one_per_style(by_label.get(label, []), per_class)
        if len(group) < 2:
            continue  # leave-one-out needs a second image of the class
        if chosen and len(chosen) + len(group) > max_images:
            break
        chosen.extend(group)
    return chosen


def _png(image) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_probes(
    plan: embedded.Plan,
    spec: embedded.EmbeddedSpec,
    nodes: Sequence[str],
    image_size: int,
    out_dir: str,
    *,
    upstream: str,
    max_images: int = DEFAULT_MAX_IMAGES,
    per_class: int = DEFAULT_PER_CLASS,
) -> dict:
    """Renders and writes the probes of ``nodes`` (see the module docstring); returns
    the manifest. A node with fewer than two held-out classes gets no probe, and the
    manifest says so."""
    files.check_replaceable(out_dir, OWNER)  # before the rendering, which takes minutes
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = str(files.make_temp_dir(f".{os.path.basename(out_dir)}.", parent, owner=OWNER))
    rendered: dict[str, bytes] = {}  # item key -> PNG: nodes share classes
    manifest = {"version": MANIFEST_VERSION, "upstream": upstream, "image_size": image_size}
    manifest["max_images"], manifest["per_class"] = max_images, per_class
    manifest["probes"], manifest["skipped"] = [], {}
    try:
        for n, node in enumerate(nodes):
            items = plan_probe(plan, node, max_images, per_class)
            classes = sorted({plan.probe_labels[it.label] for it in items})
            if len(classes) < 2:
                manifest["skipped"][node] = f"{len(classes)} held-out class(es) below it"
                continue
            folder = f"{n:02d}-{embedded.slug(node)}"
            for k, item in enumerate(items):
                if item.key not in rendered:
                    rendered[item.key] = _png(embedded.render(item, plan.faces, image_size, spec))
                label = embedded.slug(plan.probe_labels[item.label])
                path = os.path.join(tmp, folder, label, f"{k}.png")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(rendered[item.key])
            manifest["probes"].append(
                {"node": node, "path": folder, "classes": len(classes), "images": len(items)}
            )
        with open(os.path.join(tmp, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        files.replace_dir(tmp, out_dir, OWNER)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def read_manifest(out_dir: str) -> dict | None:
    """The manifest of a finished probe folder, or None if there is none."""
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def ensure_probes(
    plan_fn,
    spec,
    nodes,
    image_size,
    out_dir,
    *,
    upstream,
    max_images=DEFAULT_MAX_IMAGES,
    per_class=DEFAULT_PER_CLASS,
) -> dict:
    """Writes the probes unless ``out_dir`` already holds them for these nodes, upstream,
    size, cap and images per class (``plan_fn`` is called only when they must be
    written)."""
    manifest = read_manifest(out_dir)
    wanted = {
        "upstream": upstream,
        "image_size": image_size,
        "per_class": per_class,
        "max_images": max_images,
    }
    if manifest is not None and all(manifest.get(k) == v for k, v in wanted.items()):
        listed = [p["node"] for p in manifest["probes"]] + list(manifest["skipped"])
        if sorted(listed) == sorted(nodes):
            return manifest
    files.check_replaceable(out_dir, OWNER)  # before making the plan
    return write_probes(
        plan_fn(),
        spec,
        nodes,
        image_size,
        out_dir,
        upstream=upstream,
        max_images=max_images,
        per_class=per_class,
    )

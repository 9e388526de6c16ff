"""The specialisation benchmark on tiny modules: an expert whose features separate its
probe's classes beats the baseline there, ranks first, and the files are written."""

import json

import numpy as np
from PIL import Image

from tests.vtab_eval import hub_fixtures
from vtab_eval import pool as pool_lib
from vtab_eval import probes

REDS = hub_fixtures.REDDISH


def _probe_folder(root, nodes):
    """A probe per node: colour classes (images differ only by noise in the corner)."""
    rng = np.random.default_rng(0)
    manifest = {"version": 1, "upstream": "tiny", "image_size": 8, "probes": [], "skipped": {}}
    for n, node in enumerate(nodes):
        folder = f"{n:02d}-{node}"
        for c, colour in enumerate(REDS):
            for k in range(5):
                image = np.empty((8, 8, 3), np.float32)
                image[:] = colour
                image += rng.normal(0, 0.02, image.shape)
                image[:2, :2] = rng.uniform(0, 1, (2, 2, 3))
                path = root / folder / f"class{c}" / f"{k}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
                Image.fromarray(pixels).save(path)
        manifest["probes"].append({"node": node, "path": folder, "classes": 4, "images": 20})
    # The same images under a second name: embedded once.
    (root / "probes.json").write_text(json.dumps(manifest))
    return root


def test_matrix_margins_and_files(tmp_path):
    hub = hub_fixtures.make_pool(tmp_path / "hub", classifiers=False)
    folder = _probe_folder(tmp_path / "probes", ["red", "green"])
    record = probes.run(str(hub), str(folder), str(tmp_path / "out"), str(tmp_path / "cache"), 16)
    matrix, base = record["matrix"], record["baseline"]
    red = next(m for m in matrix if m.endswith("/red"))
    green = next(m for m in matrix if m.endswith("/green"))
    # Colour features tell the reddish classes apart; corner noise does not.
    assert matrix[red]["red"] == 1.0 and matrix[base]["red"] < 0.6
    rows = {r["node"]: r for r in record["probes"]}
    assert rows["red"]["full"]["module"] == red and rows["red"]["full"]["rank"] == 1
    assert rows["red"]["full"]["margin"] > 40
    assert rows["green"]["full"]["module"] == green and rows["green"]["full"]["rank"] > 1
    summary = record["summary"]["full"]
    assert (summary["probes"], summary["beat"], summary["first"]) == (2, 1, 1)
    assert not summary["met"]  # 1 of 2 is short of 80%
    assert "NOT met" in record["summary_line"] and "1/2" in record["summary_line"]
    out = tmp_path / "out"
    assert (out / "probes.png").stat().st_size > 0
    assert "| red | 20 | 4 |" in (out / "probes.md").read_text()


def test_shared_images_are_embedded_once(tmp_path):
    folder = _probe_folder(tmp_path / "probes", ["a", "b"])
    images = probes.ProbeImages(str(folder))
    # Both probes were drawn from one generator, so they differ; a copy is not.
    assert len(images.paths) == 40
    (folder / "02-c").symlink_to(folder / "00-a")
    manifest = json.loads((folder / "probes.json").read_text())
    manifest["probes"].append({"node": "c", "path": "02-c", "classes": 4, "images": 20})
    (folder / "probes.json").write_text(json.dumps(manifest))
    again = probes.ProbeImages(str(folder))
    assert len(again.paths) == 40 and list(again.probes["c"][0]) == list(again.probes["a"][0])


def test_saturated_probes_are_flagged(tmp_path):
    hub = hub_fixtures.make_pool(tmp_path / "hub", classifiers=False)
    pool = pool_lib.open_pool(str(hub))
    base = pool.baseline.id
    matrix = {m: {"x": 0.5, "y": 0.5} for m in pool.ids}
    matrix[base] = {"x": 0.9, "y": 0.2}
    rows = {r["node"]: r for r in probes.probe_rows(matrix, pool)}
    assert rows["x"]["saturated"] and rows["y"]["saturated"]
    matrix[base] = {"x": 0.5, "y": 0.85}
    rows = {r["node"]: r for r in probes.probe_rows(matrix, pool)}
    assert not rows["x"]["saturated"] and not rows["y"]["saturated"]

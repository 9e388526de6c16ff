"""The specialisation benchmark on tiny modules: an expert whose features separate its
probe's classes beats the baseline there, ranks first, and the files are written."""

import json

from tests.vtab_eval import hub_fixtures
from vtab_eval.pool import expert_pool as pool_lib
from vtab_eval.report import probes


def test_matrix_margins_and_files(tmp_path):
    hub = hub_fixtures.make_pool(tmp_path / "hub", classifiers=False)
    folder = hub_fixtures.probe_folder(tmp_path / "probes", ["red", "green"])
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
    folder = hub_fixtures.probe_folder(tmp_path / "probes", ["a", "b"])
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

"""Exporting a work tree: the tree, expert_info.json, model cards, errors, overwrite."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fanout.files
import hub_export
from experts.data import pipelines
from hub_export import exporter, metadata, trained, tree

from .conftest import BATCH, EXPERTS, LABELS, STEPS, TINY, make_info, module_path

REPO = Path(hub_export.__file__).parent.parent

UPSTREAM = "toy_upstream.32px"
EXPECTED = [
    f"local/experts/bit-adapter-packed/{TINY}/{UPSTREAM}/all/1",
    f"local/experts/bit-adapter/{TINY}/{UPSTREAM}/script.greek/1",
    f"local/experts/bit-adapter/{TINY}/{UPSTREAM}/script.latin/1",
    f"local/experts/bit-classifier/{TINY}/{UPSTREAM}/upstream/1",
    f"local/experts/bit-epn/{TINY}/{UPSTREAM}/epn/1",
    f"local/experts/bit/{TINY}/{UPSTREAM}/baseline/1",
    f"local/experts/bit/{TINY}/{UPSTREAM}/script.greek/1",
    f"local/experts/bit/{TINY}/{UPSTREAM}/script.latin/1",
]
B_IMAGES = STEPS["baseline"] * BATCH["baseline"]


def info_of(root, kind, expert=None):
    return json.loads((module_path(root, kind, expert) / tree.INFO_FILE).read_text())


def test_every_kind_is_exported_and_catalogued(hub_tree):
    root, results, lines = hub_tree
    assert sorted(r["handle"] for r in results) == EXPECTED
    assert len(lines) == len(EXPECTED) and all(line.startswith("exported ") for line in lines)
    entries = tree.catalog(root)
    assert [e["handle"] for e in entries] == EXPECTED
    kinds = [e["kind"] for e in entries]
    assert kinds == [
        "packed",
        "adapter",
        "adapter",
        "classifier",
        "epn",
        "baseline",
        "full",
        "full",
    ]
    assert all(e["size_bytes"] > 100_000 for e in entries)
    for e in entries:
        assert e["handle"] == e["path"][len(str(root)) + 1 :]
        assert {tree.SAVED_MODEL_FILE, tree.INFO_FILE, tree.CARD_FILE} <= set(
            p.name for p in Path(e["path"]).iterdir()
        )
    assert not (root / tree.INCOMING_DIR).exists()


def test_baseline_info(hub_tree):
    info = info_of(hub_tree[0], "baseline")
    assert info["schema_version"] == metadata.SCHEMA_VERSION
    assert (info["name"], info["kind"], info["node"]) == ("baseline", "baseline", None)
    assert info["handle"] == EXPECTED[5]
    assert (info["arch"], info["feature_dim"]) == (TINY, 256)
    assert info["upstream"] == {
        "dataset": "toy_upstream/32px",
        "num_labels": 4,
        "num_nodes": 7,
        "train_images": 100,
        "slice_images": 100,
    }
    assert info["images_seen"] == B_IMAGES
    assert info["training"] == {
        "job": "baseline",
        "steps": STEPS["baseline"],
        "global_batch": BATCH["baseline"],
        "warm_start": None,
        "metrics": {"steps": STEPS["baseline"], "top1": 0.5},
    }
    assert info["input"] == {
        "range": [0.0, 1.0],
        "dtype": "float32",
        "layout": "NHWC",
        "size": [32, 32],
        "any_size": True,
    }
    assert info["output"] == {"feature_vector": [None, 256]}
    expected = {"char/a": 0.1, "char/b": 0.3, "char/alpha": 0.2, "char/beta": 0.4}
    assert info["label_distribution"] == pytest.approx(expected)
    prov = info["provenance"]
    assert prov["checkpoint"].endswith("baseline/final/model")
    assert prov["tensorflow"] and prov["exported_at"].endswith("+00:00")


def test_full_and_adapter_expert_info(hub_tree):
    root = hub_tree[0]
    full = info_of(root, "full", "script/latin")
    assert (full["name"], full["kind"], full["node"]) == ("script.latin", "full", "script/latin")
    assert full["description"] == "Latin script"
    assert full["images_seen"] == B_IMAGES + STEPS["full"] * BATCH["full"]
    assert full["upstream"]["slice_images"] == 40
    assert full["label_distribution"] == pytest.approx({"char/a": 0.25, "char/b": 0.75})
    assert full["training"]["job"] == "full/script/latin"
    assert full["training"]["warm_start"] == "baseline"
    assert full["provenance"]["checkpoint"].endswith("full/script%2Flatin/final/model")
    # The label prior is the one the data library computes for the slice.
    prior = make_info().label_prior("script/greek")
    adapter = info_of(root, "adapter", "script/greek")
    np.testing.assert_allclose(prior, [0, 0, 1 / 3, 2 / 3])
    expected = {"char/alpha": 1 / 3, "char/beta": 2 / 3}  # zeros are left out
    assert adapter["label_distribution"] == pytest.approx(expected)
    per_expert = STEPS["adapter"] * BATCH["adapter"] // len(EXPERTS)
    assert adapter["images_seen"] == B_IMAGES + per_expert
    assert adapter["training"]["images_per_expert"] == per_expert
    # Only this expert's evaluation, without its prefix.
    assert adapter["training"]["metrics"] == {"top1": 0.75, "loss": 1.5}
    assert adapter["collection"] == "bit-adapter"


def test_packed_classifier_and_epn_info(hub_tree):
    root = hub_tree[0]
    packed = info_of(root, "packed")
    assert packed["experts"] == ["script.latin", "script.greek"]
    assert packed["expert_nodes"] == list(EXPERTS)
    assert packed["output"] == {"feature_vector": [None, 256], "all_experts": [None, 2, 256]}
    assert packed["images_seen"] == B_IMAGES + STEPS["adapter"] * BATCH["adapter"]
    assert "label_distribution" not in packed
    classifier = info_of(root, "classifier")
    assert classifier["output"]["labels"] == list(LABELS)
    assert classifier["output"]["activation"] == "sigmoid"
    assert classifier["all_logits_nodes"] == list(make_info().hierarchy.nodes)
    labels_file = module_path(root, "classifier") / "labels.txt"
    assert labels_file.read_text().split() == list(LABELS)
    epn = info_of(root, "epn")
    assert epn["output"]["labels"] == ["script.latin", "script.greek"]
    assert epn["expert_nodes"] == list(EXPERTS)
    assert epn["images_seen"] == B_IMAGES + STEPS["epn"] * BATCH["epn"]


def test_model_cards(hub_tree):
    root = hub_tree[0]
    card = (module_path(root, "adapter", "script/latin") / tree.CARD_FILE).read_text()
    assert card.startswith(f"# Module local/experts/bit-adapter/{TINY}/{UPSTREAM}/script.latin/1")
    assert "adapter expert" in card and "`script/latin`" in card
    assert "hub.KerasLayer(" in card and "trainable=True" in card
    assert "This module's slice: 40 train images." in card
    assert "- Upstream evaluation: top1 0.25.\n" in card  # its own metrics, unprefixed
    card = (module_path(root, "classifier") / tree.CARD_FILE).read_text()
    assert "[batch, 4] sigmoid logits" in card


def test_plan_skips_unfinished_jobs_unless_they_are_named(work, tmp_path):
    empty = trained.TrainedUpstream(**{**vars(work[0]), "workdir": tmp_path})
    targets, skipped = exporter.plan(empty, "local", 1)
    assert targets == []
    assert skipped[:3] == [
        "baseline: baseline not trained",
        "full expert script/latin: not trained",
        "full expert script/greek: not trained",
    ]
    with pytest.raises(tree.ExportError, match=r"epn has no finished run \(needed for epn\)"):
        exporter.plan(empty, "local", 1, ("epn",))
    with pytest.raises(tree.ExportError, match="unknown module kind 'fulll'"):
        exporter.parse_kinds("full,fulll")
    assert exporter.parse_kinds(" full, epn ,") == ("full", "epn")


def test_a_checkpoint_of_another_size_is_a_one_line_error(work):
    wrong = trained.TrainedUpstream(**{**vars(work[0]), "size": "r26x0.25"})
    with pytest.raises(tree.ExportError) as error:
        wrong.restore(7, 0, "baseline")
    message = str(error.value)
    assert "does not fit a r26x0.25 model with 7 outputs" in message and "\n" not in message


def test_a_rerun_keeps_current_modules_and_stops_on_stale_ones(hub_tree, work):
    root = hub_tree[0]
    before = info_of(root, "epn")
    targets, _ = exporter.plan(work[0], "local", 1)
    lines = []
    assert exporter.Exporter(work[0], root, lines.append).export(targets) == []
    assert len([line for line in lines if line.startswith("keeping existing")]) == 8
    metrics = work[0].job("epn").metrics_path
    stamp = metrics.stat()
    os.utime(metrics, (stamp.st_atime, stamp.st_mtime + 3600))  # the EPN trained again
    try:
        with pytest.raises(
            tree.ExportError,
            match=r"epn/1 exists, exported before its checkpoint was trained again \(1 of 8 "
            r"modules are\); pass --config.overwrite=true",
        ):
            exporter.Exporter(work[0], root, print).export(targets)
        assert info_of(root, "epn") == before
        assert exporter.Exporter(work[0], root, print).export(targets, skip_existing=True) == []
    finally:
        os.utime(metrics, (stamp.st_atime, stamp.st_mtime))
    assert info_of(root, "epn") == before
    with pytest.raises(tree.ExportError, match="exclude each other"):
        exporter.Exporter(work[0], root, print).export(targets, True, True)


def test_an_interrupted_export_is_cleaned_up_by_the_next(hub_tree, work):
    root = hub_tree[0]
    incoming = root / tree.INCOMING_DIR
    (incoming / "module-killed").mkdir(parents=True)  # a write killed half-way
    fanout.files.mark_owned(incoming / "module-killed", tree.OWNER)
    (incoming / "module-killed" / "saved_model.pb").write_bytes(b"half")
    target = Path(hub_tree[1][0]["path"])
    aside = incoming / "replaced-killed"  # killed between moving aside and renaming
    aside.mkdir()
    fanout.files.mark_owned(aside, tree.OWNER)
    (aside / "target").write_text(str(target))
    os.rename(target, aside / "module")
    lines = []
    targets, _ = exporter.plan(work[0], "local", 1)
    assert exporter.Exporter(work[0], root, lines.append).export(targets) == []
    assert target.is_dir() and not incoming.exists()
    assert any(line.startswith(f"restored {target}") for line in lines), lines


def test_the_work_tree_is_read_from_what_its_jobs_recorded(work, monkeypatch):
    opened = []
    monkeypatch.setattr(
        pipelines, "open_upstream", lambda *args: opened.append(args) or (None, make_info())
    )
    read = trained.TrainedUpstream.open(work[0].workdir, data_dir="elsewhere")
    assert (read.dataset, read.size, read.image_size) == ("toy_upstream/32px", TINY, 32)
    assert read.experts == EXPERTS  # the adapters' index order
    assert set(read.full_experts) == set(EXPERTS)
    assert opened == [("toy_upstream/32px", "elsewhere")]
    assert read.images("full", "script/latin") == STEPS["full"] * BATCH["full"]


def test_export_from_config_failing_midway_leaves_nothing_then_overwrites(config, monkeypatch):
    root = Path(config.hub_root)
    with monkeypatch.context() as m:  # the SavedModel is written, then the card fails

        def broken(directory, info):
            raise OSError("disk full")

        m.setattr(metadata, "write_card", broken)
        with pytest.raises(OSError, match="disk full"):
            exporter.export(config, log=print)
    assert [p.name for p in root.iterdir()] == [".export.lock"]  # no module, no staging

    [result] = exporter.export(config, log=print)
    path = Path(result["path"])
    assert path == module_path(root, "baseline")
    first = (path.stat().st_ino, info_of(root, "baseline")["images_seen"])
    assert first[1] == B_IMAGES
    assert exporter.export(config, log=print) == []  # a plain rerun keeps the current one
    assert path.stat().st_ino == first[0]
    config.overwrite = True
    recorded = Path(config.workdir) / "baseline" / "config.json"
    changed = json.loads(recorded.read_text())
    changed["train"]["global_batch"] = 1  # a visible change in the replacement
    recorded.write_text(json.dumps(changed))
    exporter.export(config, log=print)
    second = (path.stat().st_ino, info_of(root, "baseline")["images_seen"])
    assert second[0] != first[0] and second[1] == STEPS["baseline"]
    assert [e["handle"] for e in tree.catalog(root)] == [EXPECTED[5]]


def test_cli_errors_are_one_line(tmp_path):
    config_file = Path(hub_export.__file__).parent / "config.py"
    base = tmp_path / "upstream" / "baseline"
    base.mkdir(parents=True)
    recorded = {"data": {"name": "embedded_upstream/32px", "data_dir": "unused"}}
    (base / "config.json").write_text(json.dumps(recorded))
    command = [
        sys.executable, "-m", "hub_export.export",
        f"--config={config_file}",
        f"--workdir={tmp_path}/upstream",
        f"--config.data_dir={tmp_path}/tfds",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    assert done.returncode != 0
    [message] = [line for line in done.stderr.splitlines() if line.startswith("hub_export:")]
    assert message.startswith("hub_export: error: embedded_upstream/32px is not prepared in ")
    assert "Traceback" not in done.stderr


def test_catalog_command_prints_json_without_bulky_fields(hub_tree):
    command = [
        sys.executable, "-m", "hub_export.catalog", f"--config.hub_root={hub_tree[0]}",
        "--config.json=true", "--config.kinds=classifier",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=True)
    [entry] = json.loads(done.stdout)
    assert entry["handle"] == EXPECTED[3] and entry["kind"] == "classifier"
    assert entry["output"]["labels"] == len(LABELS)  # a count instead of the list
    assert "all_logits_nodes" not in entry and "label_distribution" not in entry


def test_every_module_kind_has_its_class_and_its_path():
    from hub_export import kinds, tree

    assert set(kinds.KINDS) == set(tree.KINDS)
    assert all(name == cls.name for name, cls in kinds.KINDS.items())

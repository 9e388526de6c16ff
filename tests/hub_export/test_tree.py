"""Tree layout, names, atomic writes and the catalog (no TensorFlow needed)."""

import json
import os
import subprocess
import sys

import pytest

from fanout import files
from hub_export import catalog as catalog_cli
from hub_export import tree


def test_slugs_are_path_safe_and_readable():
    assert tree.slug("script/latin") == "script.latin"
    assert tree.slug("emoji/food-drink") == "emoji.food-drink"
    assert tree.slug("embedded_upstream/32px") == "embedded_upstream.32px"
    assert tree.slug("char/U+0041 x") == "char.u_0041_x"
    assert tree.slug("/hidden/") == "hidden"  # never a dot directory
    with pytest.raises(tree.ExportError, match="cannot make a module name from '//'"):
        tree.slug("//")


def test_clashing_expert_names_are_refused():
    assert tree.check_unique_slugs(["a/b", "c"]) == {"a/b": "a.b", "c": "c"}
    with pytest.raises(tree.ExportError, match="'Latin' and 'latin' both map to module name"):
        tree.check_unique_slugs(["Latin", "latin"])
    with pytest.raises(tree.ExportError, match="'Baseline' clashes with the baseline"):
        tree.check_unique_slugs(["Baseline"])


def test_a_registered_kind_places_its_modules_by_its_own_traits():
    @tree.KINDS.register
    class Sketch:
        name, collection, module_name, feature_vector = "sketch", "bit-sketch", None, True

    try:
        handle = tree.Handle.make("local", "sketch", "r50x1", "in21k", "a/b")
        assert handle.relpath == "local/experts/bit-sketch/r50x1/in21k/a.b/1"
        assert tree.feature_vector_kinds() == ["baseline", "full", "adapter", "sketch"]
    finally:
        tree.KINDS.remove("sketch")
    with pytest.raises(tree.ExportError, match="unknown module kind 'sketch'; choose one of"):
        tree.Handle.make("local", "sketch", "r50x1", "in21k", "a/b")
    with pytest.raises(ValueError, match="module kind 'full' is registered twice"):
        tree.KINDS.register(type("Again", (), {"name": "full"}))


def test_the_kinds_register_without_tensorflow():
    # The package registers its kinds on import; the tree and the catalog stay light.
    code = (
        "import sys, hub_export.catalog as c; print(len(c.tree.KINDS), 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["6", "False"], out.stderr[-2000:]


def test_handles_mirror_tfhub():
    full = tree.Handle.make("google", "full", "r50x1", "in21k", "animal")
    assert full.relpath == "google/experts/bit/r50x1/in21k/animal/1"
    assert full.url == "https://tfhub.dev/google/experts/bit/r50x1/in21k/animal/1"
    adapter = tree.Handle.make("local", "adapter", "r26x0.25", "embedded_upstream/32px", "a/b", 2)
    assert adapter.relpath == "local/experts/bit-adapter/r26x0.25/embedded_upstream.32px/a.b/2"
    assert tree.Handle.make("local", "baseline", "r50x1", "in21k").name == "baseline"
    assert tree.Handle.make("local", "packed", "r50x1", "in21k").collection == "bit-adapter-packed"
    with pytest.raises(tree.ExportError, match="kind 'full' needs expert"):
        tree.Handle.make("local", "full", "r50x1", "in21k")
    with pytest.raises(tree.ExportError, match="unknown module kind 'fool'"):
        tree.Handle.make("local", "fool", "r50x1", "in21k", "x")
    with pytest.raises(tree.ExportError, match="versions start at 1"):
        tree.Handle.make("local", "epn", "r50x1", "in21k", version=0)


def fake_module(info: dict, marker: str = "a"):
    def write(directory):
        (directory / tree.SAVED_MODEL_FILE).write_text(marker)
        (directory / "variables").mkdir()
        (directory / "variables" / "variables.index").write_text("x" * 100)
        (directory / tree.INFO_FILE).write_text(json.dumps(info))

    return write


def visible(root):
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def test_atomic_write_renames_a_complete_module_into_place(tmp_path):
    target = tmp_path / "pub/experts/bit/a/b/c/1"
    assert tree.atomic_write(tmp_path, target, fake_module({"kind": "full"})) == target
    assert (target / tree.SAVED_MODEL_FILE).read_text() == "a"
    assert target.stat().st_mode & 0o777 == 0o777 & ~files.current_umask()  # as mkdir
    assert not (tmp_path / tree.INCOMING_DIR).exists()


def test_a_write_that_fails_midway_leaves_nothing_visible(tmp_path):
    target = tmp_path / "pub/experts/bit/a/b/c/1"

    def fails(directory):
        fake_module({})(directory)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        tree.atomic_write(tmp_path, target, fails)
    assert list(tmp_path.iterdir()) == []  # not even the parents or the hidden staging dir


def test_existing_modules_are_replaced_only_with_overwrite(tmp_path):
    target = tmp_path / "m/1"
    tree.atomic_write(tmp_path, target, fake_module({}, "old"))
    with pytest.raises(tree.ExportError, match=r"m/1 exists; pass --config.overwrite=true"):
        tree.atomic_write(tmp_path, target, fake_module({}, "new"))
    assert (target / tree.SAVED_MODEL_FILE).read_text() == "old"

    def fails(directory):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        tree.atomic_write(tmp_path, target, fails, overwrite=True)
    assert (target / tree.SAVED_MODEL_FILE).read_text() == "old"  # a failed replace keeps it
    tree.atomic_write(tmp_path, target, fake_module({}, "new"), overwrite=True)
    assert (target / tree.SAVED_MODEL_FILE).read_text() == "new"
    assert visible(tmp_path) == [
        "m",
        "m/1",
        "m/1/expert_info.json",
        "m/1/saved_model.pb",
        "m/1/variables",
        "m/1/variables/variables.index",
    ]
    assert not (tmp_path / tree.INCOMING_DIR).exists()


def test_catalog_lists_modules_and_skips_writes_in_progress(tmp_path):
    for name, kind in (("x", "full"), ("y", "adapter")):
        tree.atomic_write(
            tmp_path, tmp_path / name / "1", fake_module({"kind": kind, "node": name})
        )
    # A half-written module in the staging area and a published module without info.
    staging = tmp_path / tree.INCOMING_DIR / "module-1"
    staging.mkdir(parents=True)
    fake_module({"kind": "full"})(staging)
    (tmp_path / "published" / "1").mkdir(parents=True)
    (tmp_path / "published" / "1" / tree.SAVED_MODEL_FILE).write_text("")
    entries = tree.catalog(tmp_path)
    assert [(e["handle"], e["kind"]) for e in entries] == [
        ("published/1", None),
        ("x/1", "full"),
        ("y/1", "adapter"),
    ]
    assert entries[1]["path"] == str(tmp_path / "x" / "1")
    assert entries[1]["size_bytes"] == 1 + 100 + len(json.dumps({"kind": "full", "node": "x"}))
    assert [e["handle"] for e in tree.catalog(tmp_path, kind="adapter")] == ["y/1"]
    table = catalog_cli.format_table(entries)
    assert table.splitlines()[0].split() == [
        "kind",
        "handle",
        "node",
        "output",
        "images",
        "seen",
        "MiB",
    ]
    assert table.splitlines()[-1].startswith("3 modules")
    with pytest.raises(tree.ExportError, match="hub root .*nowhere does not exist"):
        tree.catalog(tmp_path / "nowhere")


def test_catalog_is_empty_for_an_empty_root(tmp_path):
    assert tree.catalog(tmp_path) == []
    assert os.listdir(tmp_path) == []

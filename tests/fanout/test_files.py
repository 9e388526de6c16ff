"""fanout/files.py. Atomic writes: a failed write leaves the old file, and no temporary
file, behind. Directories a command owns: it replaces or removes one only when it made
it (its marker) or it is empty; a user's directory is refused, byte for byte kept."""

import json
import math
import os

import numpy as np
import pytest

from fanout import files
from fanout.bench import ray_vs_local
from tests.bad_input import snapshot, user_files

OWNER = "some.command"


def test_writes_into_new_directories_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "x.json"
    files.write_json(path, {"b": 1, "a": [1.5]})
    assert json.loads(path.read_text()) == {"a": [1.5], "b": 1}
    assert path.read_text().startswith('{\n  "a"')  # sorted, indented
    assert files.read_json(path) == {"a": [1.5], "b": 1}
    files.write_text(path, "new")
    assert path.read_text() == "new"
    assert os.listdir(path.parent) == ["x.json"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "x.txt"
    files.write_text(path, "old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        files.write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.txt"]


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": 1e999}', "{", "\xff"])
def test_json_that_could_not_be_written_back_is_invalid(tmp_path, text):
    path = tmp_path / "x.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match=f"^{path}: invalid JSON"):
        files.read_json(path)


def test_nan_is_never_written(tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        files.write_json(tmp_path / "x.json", {"loss": math.nan})
    assert not list(tmp_path.iterdir())


def test_png_and_npz_round_trip(tmp_path):
    from PIL import Image

    from vtab_eval import files as downstream_files

    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    files.write_png(tmp_path / "x.png", Image.fromarray(image))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "x.png")), image)
    downstream_files.write_npz(tmp_path / "x.npz", a=image)
    np.testing.assert_array_equal(np.load(tmp_path / "x.npz")["a"], image)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_and_directories_get_the_umask_permissions(umask, tmp_path):
    old = os.umask(umask)
    try:
        path = files.write_text(tmp_path / "x.txt", "x")
        directory = files.make_temp_dir("d-", tmp_path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert directory.stat().st_mode & 0o777 == 0o777 & ~umask


def test_a_finished_job_and_an_exported_module_are_readable_under_umask_022(tmp_path):
    from hub_export import tree

    old = os.umask(0o022)
    try:
        target = tree.atomic_write(
            tmp_path, tmp_path / "m" / "1", lambda d: (d / "f").write_text("x")
        )
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o755


def complete(tmp_path, text):
    tmp = files.make_temp_dir(".out.", tmp_path, owner=OWNER)
    (tmp / "result.txt").write_text(text)
    return tmp


def test_a_directory_is_replaced_when_missing_empty_or_owned(tmp_path):
    target = tmp_path / "out"
    files.replace_dir(complete(tmp_path, "1"), target, OWNER)
    assert (target / "result.txt").read_text() == "1" and files.owned(target, OWNER)
    files.replace_dir(complete(tmp_path, "2"), target, OWNER)
    assert (target / "result.txt").read_text() == "2"
    empty = tmp_path / "empty"
    empty.mkdir()
    files.replace_dir(complete(tmp_path, "3"), empty, OWNER)
    assert (empty / "result.txt").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out"]  # nothing aside


def test_a_users_directory_is_never_replaced_or_removed(tmp_path):
    mine = user_files(tmp_path / "mine")
    kept = snapshot(mine)
    tmp = complete(tmp_path, "new")
    with pytest.raises(files.NotOwned, match=rf"^{mine} holds files some.command did not write"):
        files.replace_dir(tmp, mine, OWNER)
    with pytest.raises(files.NotOwned):
        files.remove_dir(mine, OWNER)
    with pytest.raises(files.NotOwned):
        files.fresh_dir(mine, OWNER)
    assert snapshot(mine) == kept and tmp.is_dir()


def test_another_commands_marker_or_a_link_is_not_ownership(tmp_path):
    other = files.make_temp_dir("other-", tmp_path, owner="other.command")
    (other / "x").write_text("x")
    assert files.owned(other, "other.command") and not files.owned(other, OWNER)
    with pytest.raises(files.NotOwned):
        files.remove_dir(other, OWNER)
    link = tmp_path / "link"
    link.symlink_to(other, target_is_directory=True)
    with pytest.raises(files.NotOwned):
        files.remove_dir(link, "other.command")
    assert (other / "x").read_text() == "x"


def test_the_benchmark_starts_afresh_only_in_its_own_directory(tmp_path):
    mine = user_files(tmp_path / "out" / "local")
    kept = snapshot(mine)
    with pytest.raises(
        SystemExit, match=rf"^fanout\.bench\.ray_vs_local: error: {mine} holds files"
    ):
        ray_vs_local.run_side("local", mine, print)
    assert snapshot(mine) == kept

"""The atomic writers of both sides (experts/files.py, vtab_eval/files.py): a failed
write leaves the old file, and no temporary file, behind."""

import json
import os

import numpy as np
import pytest

from experts import files as upstream_files
from vtab_eval import files as downstream_files

BOTH = pytest.mark.parametrize("files", [upstream_files, downstream_files], ids=["experts", "vtab"])


@BOTH
def test_writes_into_new_directories_and_replaces(files, tmp_path):
    path = tmp_path / "a" / "b" / "x.json"
    files.write_json(path, {"b": 1, "a": [1.5]})
    assert json.loads(path.read_text()) == {"a": [1.5], "b": 1}
    assert path.read_text().startswith('{\n  "a"')  # sorted, indented
    files.write_text(path, "new")
    assert path.read_text() == "new"
    assert os.listdir(path.parent) == ["x.json"]


@BOTH
def test_a_failed_write_keeps_the_old_file_and_no_temporary(files, tmp_path, monkeypatch):
    path = tmp_path / "x.txt"
    files.write_text(path, "old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        files.write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.txt"]


def test_png_and_npz_round_trip(tmp_path):
    from PIL import Image

    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    upstream_files.write_png(tmp_path / "x.png", Image.fromarray(image))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "x.png")), image)
    downstream_files.write_npz(tmp_path / "x.npz", a=image)
    np.testing.assert_array_equal(np.load(tmp_path / "x.npz")["a"], image)


@BOTH
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_and_directories_get_the_umask_permissions(files, umask, tmp_path):
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

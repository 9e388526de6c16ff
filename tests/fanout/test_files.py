"""Directories a command owns (fanout/files.py): it replaces or removes one only when it
made it (its marker) or it is empty; a user's directory is refused, byte for byte kept."""

import pytest

from fanout import files
from fanout.bench import ray_vs_local
from tests.bad_input import snapshot, user_files

OWNER = "some.command"


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

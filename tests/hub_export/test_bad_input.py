"""Bad input to ``hub_export.export`` on the fake work tree's B (conftest ``config``),
case by case: each ends in one line naming the culprit, a non-zero exit, and no file
written or lost (tests/bad_input.py); nothing outside the hub root is ever written, and
nothing in it that an export did not write is removed."""

import errno
import math
from pathlib import Path

import pytest
import tensorflow as tf

from hub_export import export, kinds, modules, tree
from tests.bad_input import fails_cleanly, snapshot, user_files

from .conftest import TINY

BASELINE = f"local/experts/bit/{TINY}/toy_upstream.32px/baseline/1"


def test_a_link_in_the_hub_root_leading_outside_it(config, tmp_path):
    outside = user_files(tmp_path / "outside")
    hub = Path(config.hub_root)
    hub.mkdir()
    (hub / "local").symlink_to(outside, target_is_directory=True)
    kept = snapshot(outside)
    fails_cleanly(
        lambda: export.execute(config),
        "hub_export",
        str(hub / BASELINE),
        "outside the hub root",
        roots=[outside, hub],
    )
    assert snapshot(outside) == kept and sorted(p.name for p in outside.iterdir()) == [
        "notes.txt",
        "photos",
    ]


def test_a_staging_area_that_is_a_link_leading_outside(config, tmp_path):
    outside = user_files(tmp_path / "outside")
    hub = Path(config.hub_root)
    hub.mkdir()
    (hub / tree.INCOMING_DIR).symlink_to(outside, target_is_directory=True)
    call = lambda: export.execute(config)  # noqa: E731
    fails_cleanly(call, "hub_export", tree.INCOMING_DIR, "outside the hub root", roots=[outside])


def test_a_users_directory_in_the_staging_area_is_left_alone(config):
    mine = user_files(Path(config.hub_root) / tree.INCOMING_DIR / "mine")
    kept = snapshot(mine)
    [result] = export.execute(config)
    assert result["handle"] == BASELINE
    assert snapshot(mine) == kept


def test_overwrite_never_replaces_a_directory_an_export_did_not_write(config):
    mine = user_files(Path(config.hub_root) / BASELINE)
    config.overwrite = True
    call = lambda: export.execute(config)  # noqa: E731
    fails_cleanly(call, "hub_export", str(mine), "not written by an export", roots=[mine])


def test_a_kind_named_twice_is_exported_once(config):
    config.kinds = "baseline,baseline"
    [result] = export.execute(config)
    assert result["handle"] == BASELINE


def test_an_empty_hub_root(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config.hub_root = ""
    call = lambda: export.execute(config)  # noqa: E731
    fails_cleanly(call, "hub_export", "config.hub_root=''", roots=[tmp_path])


@pytest.mark.parametrize(
    "error",
    [
        tf.errors.ResourceExhaustedError(None, None, "No space left on device"),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=["tensorflow", "os"],
)
def test_a_full_disk(config, monkeypatch, error):
    def full(module, directory):
        (Path(directory) / "saved_model.pb").write_bytes(b"half")
        raise error

    monkeypatch.setattr(modules, "save", full)
    hub = Path(config.hub_root)
    call = lambda: export.execute(config)  # noqa: E731
    fails_cleanly(call, "hub_export", "no space left", BASELINE, str(hub), roots=[hub])
    assert [p.name for p in hub.iterdir()] == [".export.lock"]  # no half module


def test_a_label_distribution_with_a_nan(config, monkeypatch):
    monkeypatch.setattr(
        kinds.Baseline, "label_distribution", lambda self, target: {"char/a": math.nan}
    )
    hub = Path(config.hub_root)
    call = lambda: export.execute(config)  # noqa: E731
    info = str(hub / BASELINE / tree.INFO_FILE)
    fails_cleanly(call, "hub_export", info, "label_distribution", "'char/a'", roots=[hub])

"""A hub module is code: the loader refuses modules whose graphs touch files, the
network or processes, and loads the honest ones (ours and the test fixtures)."""

import pytest
import tensorflow as tf

from tests.vtab_eval import hub_fixtures
from vtab_eval import hub_loader, module_check


@pytest.fixture
def writer(tmp_path):
    target = tmp_path / "leaked.txt"
    path = hub_fixtures.save_module(
        tmp_path / "evil" / "1",
        hub_fixtures.WritesAFile(str(target)),
        hub_fixtures.expert_info("evil"),
    )
    return path, target


def test_a_module_that_writes_files_is_refused_before_it_runs(writer):
    path, target = writer
    with pytest.raises(module_check.ForbiddenOpError, match=rf"module {path}: op WriteFile"):
        hub_loader.load(str(path))
    assert not target.exists()


def test_the_check_can_be_lifted_for_a_trusted_module(writer, monkeypatch):
    path, target = writer
    monkeypatch.setenv(module_check.ALLOW_ENV, "1")
    layer = hub_loader.load(str(path))
    layer(tf.zeros([1, 8, 8, 3]))
    assert target.read_text() == "written by a module"


def test_honest_modules_pass(hub_root):
    modules = sorted(hub_root.rglob("saved_model.pb"))
    assert len(modules) == 6
    for saved_model in modules:
        module_check.check_module(saved_model.parent)  # restore ops are allowed


def test_a_downloaded_module_is_checked_in_the_hub_cache(writer, monkeypatch):
    path, target = writer
    url = "https://tfhub.dev/google/experts/bit/r50x1/in21k/evil/1"
    monkeypatch.delenv("EXPERTS_HUB_ROOT", raising=False)
    # No network here: tensorflow_hub's download is replaced by its cached result.
    monkeypatch.setattr(hub_loader.hub, "resolve", lambda handle: str(path))
    with pytest.raises(module_check.ForbiddenOpError, match="op WriteFile"):
        hub_loader.load(url)
    assert not target.exists()

    def offline(handle):
        raise OSError("no route to host")

    monkeypatch.setattr(hub_loader.hub, "resolve", offline)
    with pytest.raises(hub_loader.HubLoadError, match="cannot fetch .*mirror it under"):
        hub_loader.load(url)

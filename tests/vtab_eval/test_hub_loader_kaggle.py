"""Kaggle Models handles: their forms, the local mirror, and the kagglehub download,
tested with modules exported here in those layouts and a stand-in kagglehub module
(the tests never reach the network)."""

import shutil
import sys
import types
from pathlib import Path

import pytest
import tensorflow as tf

from fanout import module_check
from tests.vtab_eval import hub_fixtures
from vtab_eval.pool import hub_loader

HANDLE = "google/bit/tensorFlow2/m-r50x1"
MIRROR = f"kaggle/{HANDLE}"


@pytest.fixture(scope="module")
def kaggle_root(tmp_path_factory):
    """A hub root mirroring versions 1, 2 and 10 of one Kaggle model (10 is the newest:
    versions compare as numbers), plus a version directory with no module in it."""
    root = tmp_path_factory.mktemp("kaggle_hub")
    first = hub_fixtures.save_module(
        root / MIRROR / "1",
        hub_fixtures.TinyModule("mean_color"),
        hub_fixtures.expert_info("m-r50x1"),
    )
    for version in ("2", "10"):
        shutil.copytree(first, root / MIRROR / version)
    (root / MIRROR / "11").mkdir()  # an interrupted copy: no saved_model.pb
    return root


@pytest.fixture
def fake_kagglehub(monkeypatch):
    """Installs a kagglehub whose model_download returns a set directory and records
    the handles it was asked for."""
    fake = types.SimpleNamespace(asked=[], result=None)

    def model_download(handle):
        fake.asked.append(handle)
        if isinstance(fake.result, Exception):
            raise fake.result
        return str(fake.result)

    fake.model_download = model_download
    monkeypatch.setitem(sys.modules, "kagglehub", fake)
    monkeypatch.delenv(hub_loader.HUB_ROOT_ENV, raising=False)
    return fake


@pytest.mark.parametrize(
    "text",
    [
        f"kaggle:{HANDLE}/2",
        f"https://www.kaggle.com/models/{HANDLE}/2",
        f"https://kaggle.com/models/{HANDLE}/2/",
        "https://www.kaggle.com/models/google/bit/TensorFlow2/m-r50x1/2",
        "https://www.kaggle.com/models/google/bit/frameworks/tensorflow2/variations/m-r50x1/versions/2?tfhub-redirect=true",
    ],
)
def test_the_forms_of_a_kaggle_handle(text):
    handle = hub_loader.parse_kaggle(text)
    assert handle == hub_loader.KaggleHandle("google", "bit", "tensorFlow2", "m-r50x1", 2)
    assert str(handle) == f"{HANDLE}/2"
    assert handle.url == f"https://www.kaggle.com/models/{HANDLE}/2"


def test_only_the_prefix_or_the_url_makes_a_kaggle_handle(kaggle_root, tmp_path, monkeypatch):
    assert hub_loader.parse_kaggle(f"kaggle:{HANDLE}").version is None
    assert hub_loader.parse_kaggle(HANDLE) is None
    assert hub_loader.parse_kaggle("https://tfhub.dev/google/experts/bit/r50x1/in21k/a/1") is None
    # The same text without the prefix is a relative local path, and stays one.
    monkeypatch.chdir(tmp_path)
    shutil.copytree(kaggle_root / MIRROR / "1", tmp_path / HANDLE / "1")
    assert hub_loader.resolve(f"{HANDLE}/1", kaggle_root) == f"{HANDLE}/1"
    # With it, a local directory of the very same name is not consulted.
    shutil.copytree(kaggle_root / MIRROR / "1", tmp_path / f"kaggle:{HANDLE}" / "1")
    assert hub_loader.resolve(f"kaggle:{HANDLE}/1", kaggle_root) == str(kaggle_root / MIRROR / "1")
    assert not hub_loader.is_path(f"kaggle:{HANDLE}/1") and hub_loader.is_path(f"{HANDLE}/1")


def test_a_kaggle_handle_resolves_to_its_mirror_newest_without_a_version(kaggle_root, monkeypatch):
    assert hub_loader.resolve(f"kaggle:{HANDLE}/2", kaggle_root) == str(kaggle_root / MIRROR / "2")
    assert hub_loader.resolve(f"kaggle:{HANDLE}", kaggle_root) == str(kaggle_root / MIRROR / "10")
    url = "https://www.kaggle.com/models/google/bit/frameworks/TensorFlow2/variations/m-r50x1"
    monkeypatch.setenv(hub_loader.HUB_ROOT_ENV, str(kaggle_root))
    assert hub_loader.resolve(url) == str(kaggle_root / MIRROR / "10")
    assert hub_loader.read_info(f"kaggle:{HANDLE}/1")["name"] == "m-r50x1"
    layer = hub_loader.load(f"kaggle:{HANDLE}/1")
    assert layer(tf.zeros([2, 8, 8, 3])).shape == (2, 8)
    # A version the mirror lacks is left to download, as its canonical URL.
    assert hub_loader.resolve(f"kaggle:{HANDLE}/3") == f"https://www.kaggle.com/models/{HANDLE}/3"
    assert hub_loader.read_info(f"kaggle:{HANDLE}/3") is None


def test_kagglehub_downloads_an_unmirrored_module_which_is_checked_first(
    kaggle_root, fake_kagglehub, monkeypatch
):
    fake_kagglehub.result = kaggle_root / MIRROR / "1"
    checked = []
    monkeypatch.setattr(module_check, "check_module", lambda path: checked.append(str(path)))
    layer = hub_loader.load(f"https://kaggle.com/models/{HANDLE}")
    assert fake_kagglehub.asked == [HANDLE]  # no version: kagglehub takes the newest
    assert checked == [str(kaggle_root / MIRROR / "1")]
    assert layer(tf.zeros([1, 8, 8, 3])).shape == (1, 8)


def test_a_downloaded_module_that_writes_files_is_refused_before_it_runs(fake_kagglehub, tmp_path):
    target = tmp_path / "leaked.txt"
    fake_kagglehub.result = hub_fixtures.save_module(
        tmp_path / "download", hub_fixtures.WritesAFile(str(target)), hub_fixtures.expert_info("x")
    )
    with pytest.raises(module_check.ForbiddenOpError, match=r"download: op WriteFile"):
        hub_loader.load(f"kaggle:{HANDLE}/7")
    assert fake_kagglehub.asked == [f"{HANDLE}/7"]
    assert not target.exists()


def _one_line_error(handle, *fragments):
    with pytest.raises(hub_loader.HubLoadError) as error:
        hub_loader.load(handle)
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_download_failures_are_one_line_errors_naming_the_handle(
    fake_kagglehub, tmp_path, monkeypatch
):
    fake_kagglehub.result = ConnectionError("Max retries exceeded with url\nsecond line")
    _one_line_error(
        f"kaggle:{HANDLE}/4",
        f"cannot download Kaggle model {HANDLE}/4 (Max retries exceeded with url)",
        f"mirror it under ${hub_loader.HUB_ROOT_ENV}/{MIRROR}/4",
    )
    fake_kagglehub.result = tmp_path  # a download that is no SavedModel
    _one_line_error(f"kaggle:{HANDLE}", f"{tmp_path} has no saved_model.pb")
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # not installed
    _one_line_error(
        f"kaggle:{HANDLE}",
        f"Kaggle model {HANDLE} is not mirrored and kagglehub is not installed",
        "expert-transfer[kaggle]",
        f"{MIRROR}/<version>",
    )


@pytest.mark.parametrize(
    "handle, message",
    [
        ("kaggle:google/bit/tensorFlow2", "a Kaggle model handle is <owner>/<model>/"),
        (f"kaggle:{HANDLE}/1/extra", "a Kaggle model handle is"),
        ("kaggle:google/../tensorFlow2/m/1", "may not contain '..'"),
        ("https://www.kaggle.com/models/google/bit/../../../etc/1", "may not contain '..'"),
        ("kaggle://google/bit/tensorFlow2/m", "a Kaggle model handle is"),
        ("kaggle:/google/bit/tensorFlow2/m", "'' is not a Kaggle name"),
        ("kaggle:google/bit/tensorFlow2/.hidden/1", "'.hidden' is not a Kaggle name"),
        ("kaggle:google/bit/pyTorch/m/1", "framework 'pyTorch' is not a TensorFlow SavedModel"),
        (f"kaggle:{HANDLE}/latest", "version 'latest' is not a positive integer"),
        (f"kaggle:{HANDLE}/0", "version '0' is not a positive integer"),
        ("https://www.kaggle.com/datasets/google/bit", "names a model as https://www.kaggle"),
    ],
)
def test_malformed_kaggle_handles_are_one_line_errors_naming_them(handle, message, kaggle_root):
    with pytest.raises(hub_loader.HubLoadError) as error:
        hub_loader.resolve(handle, kaggle_root)
    assert str(error.value).startswith(f"{handle}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_handles_and_mirror_follow_kagglehub(monkeypatch, tmp_path):
    """Our handle text is what kagglehub parses, its framework spelling ours, and the
    mirror its cache's layout under models/ (so a cache copies into a mirror as is)."""
    kagglehub_handle = pytest.importorskip("kagglehub.handle")
    from kagglehub import cache
    from kagglehub.enum import enum_to_str
    from kagglesdk.models.types.model_enums import ModelFramework

    ours = hub_loader.parse_kaggle("https://www.kaggle.com/models/google/bit/TensorFlow2/m-r50x1/3")
    theirs = kagglehub_handle.parse_model_handle(str(ours))
    assert (theirs.owner, theirs.model, theirs.framework, theirs.variation, theirs.version) == (
        "google",
        "bit",
        "tensorFlow2",
        "m-r50x1",
        3,
    )
    frameworks = (
        ModelFramework.MODEL_FRAMEWORK_TENSOR_FLOW_2,
        ModelFramework.MODEL_FRAMEWORK_TENSOR_FLOW_1,
    )
    assert sorted(enum_to_str(f) for f in frameworks) == sorted(
        hub_loader.KAGGLE_FRAMEWORKS.values()
    )
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "cache"))
    cached = Path(cache.get_cached_path(theirs)).relative_to(tmp_path / "cache" / "models")
    mirrored = (ours.mirror(tmp_path) / "3").relative_to(tmp_path / hub_loader.KAGGLE_MIRROR_DIR)
    assert cached == mirrored == Path(HANDLE, "3")

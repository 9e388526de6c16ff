"""Pool discovery over hub_export's tree and strict reading of expert_info.json."""

import json
import shutil

import pytest

from tests.vtab_eval import hub_fixtures
from vtab_eval.pool import expert_pool as pool


def test_discover_finds_experts_classifier_and_epn(hub_root):
    found = pool.discover(hub_root)
    assert found.ids == [
        f"bit/tiny/tiny_upstream/{n}" for n in ("baseline", "blue", "green", "red")
    ]
    assert found.baseline.id == "bit/tiny/tiny_upstream/baseline"
    assert found.epn.labels == ["red", "green", "blue"] and found.epn.activation == "sigmoid"
    assert found.upstream_classifier.labels == hub_fixtures.UPSTREAM_LABELS
    assert found.get("bit/tiny/tiny_upstream/red").label_distribution()["l_red"] == 0.9


def test_newest_version_wins_and_hidden_and_packed_modules_are_skipped(hub_root, tmp_path):
    root = tmp_path / "hub"
    shutil.copytree(hub_root, root)
    red = root / "tests/experts/bit/tiny/tiny_upstream/red"
    shutil.copytree(red / "1", red / "2")
    shutil.copytree(red / "1", root / "tests/experts/.incoming/module-x")
    packed = root / "tests/experts/bit-adapter-packed/tiny/tiny_upstream/all/1"
    shutil.copytree(red / "1", packed)
    info = json.loads((packed / "expert_info.json").read_text())
    (packed / "expert_info.json").write_text(json.dumps({**info, "kind": "packed"}))
    found = pool.discover(root)
    assert found.get("bit/tiny/tiny_upstream/red").handle == str(red / "2")
    assert len(found.experts) == 4


def _write(tmp_path, info):
    path = tmp_path / "expert_info.json"
    path.write_text(json.dumps(info))
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"kind": "mixture"}, "field 'kind' is 'mixture'"),
        ({"schema_version": 2}, "'schema_version' is 2"),
        ({"feature_dim": "8"}, "field 'feature_dim' has type str"),
        ({"label_distribution": {"a": 0.5, "b": 0.2}}, "sums to 0.7000"),
        ({"input": {"range": [-1, 1]}}, "'input.range' is \\[-1, 1\\]"),
        ({"output": {"logits": [None, 3]}}, "must have 'feature_vector'"),
    ],
)
def test_read_info_rejects_undocumented_or_invalid_fields(tmp_path, change, message):
    path = _write(tmp_path, {**hub_fixtures.expert_info("x"), **change})
    with pytest.raises(pool.PoolError, match=message) as error:
        pool.read_info(path)
    assert str(path) in str(error.value)


def test_read_info_requires_fields_and_classifier_labels(tmp_path):
    info = hub_fixtures.expert_info("x")
    del info["name"]
    with pytest.raises(pool.PoolError, match="missing required field 'name'"):
        pool.read_info(_write(tmp_path, info))
    epn = hub_fixtures.expert_info(
        "epn", "epn", check=False, output={"logits": [None, 2], "labels": ["a", "b"]}
    )
    with pytest.raises(pool.PoolError, match="'output.activation' is None"):
        pool.read_info(_write(tmp_path, epn))


def test_open_pool_from_comma_separated_handles(hub_root):
    base = hub_root / "tests/experts/bit/tiny/tiny_upstream"
    handles = f"{base / 'red' / '1'}, {base / 'baseline' / '1'}"
    found = pool.open_pool(handles)
    assert [e.name for e in found.experts] == ["red", "baseline"]
    assert found.baseline.name == "baseline" and found.epn is None
    with pytest.raises(pool.PoolError, match="not a hub module directory"):
        pool.open_pool(str(base / "nope"))
    with pytest.raises(pool.PoolError, match="empty --config.pool"):
        pool.open_pool(" , ")


def test_a_pool_under_the_home_directory_may_be_written_with_a_tilde(hub_root, monkeypatch):
    monkeypatch.setenv("HOME", str(hub_root.parent))
    experts = "tests/experts/bit/tiny/tiny_upstream"
    assert len(pool.open_pool(f"~/{hub_root.name}").experts) == 4  # a hub root
    base = f"~/{hub_root.name}/{experts}"
    found = pool.open_pool(f"{base}/red/1,{base}/baseline/1")  # module handles
    assert found.experts[0].handle == str(hub_root / experts / "red" / "1")


def test_a_symlinked_directory_is_named_not_dropped_silently(hub_root, tmp_path, caplog):
    import shutil

    from vtab_eval.pool import expert_pool as pool_lib

    root = tmp_path / "hub"
    shutil.copytree(hub_root, root)
    (root / "elsewhere").symlink_to(hub_root / "tests")
    with caplog.at_level("WARNING"):
        found = pool_lib.discover(root)
    assert len(found.experts) == 4  # the link's modules are not counted twice
    assert any(str(root / "elsewhere") in r.getMessage() for r in caplog.records)


def test_a_pool_combines_several_roots_and_handles(hub_root, tmp_path, caplog):
    import shutil

    from vtab_eval.pool import expert_pool as pool_lib

    other = tmp_path / "other"  # a second upstream's tree: other ids, its own B
    shutil.copytree(hub_root, other)
    for collection in (other / "tests" / "experts").iterdir():
        (collection / "tiny" / "tiny_upstream").rename(collection / "tiny" / "other_upstream")
    with caplog.at_level("WARNING"):
        both = pool_lib.open_pool(f"{hub_root},{other}")
    assert len(both.experts) == 8 and both.baseline.id == "bit/tiny/tiny_upstream/baseline"
    assert both.upstream_classifier is None and both.epn is None  # one per upstream
    assert any("2 sources have a epn" in r.getMessage() for r in caplog.records)
    red = other / "tests/experts/bit/tiny/other_upstream/red/1"
    mixed = pool_lib.open_pool(f"{hub_root},{red}")
    assert len(mixed.experts) == 5 and mixed.epn is not None  # only the root has one
    with pytest.raises(pool_lib.PoolError, match="come from two sources"):
        pool_lib.open_pool(f"{hub_root},{hub_root}")


def test_kaggle_handles_join_a_pool_with_metadata_from_the_mirror(hub_root, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    red = hub_root / "tests/experts/bit/tiny/tiny_upstream/red/1"
    bare = mirror / "kaggle/google/bit/tensorFlow2/m-r50x1"
    for version in ("1", "2"):
        shutil.copytree(red, bare / version)
    (bare / "2" / "expert_info.json").unlink()  # as published: no metadata
    monkeypatch.setenv("EXPERTS_HUB_ROOT", str(mirror))
    unmirrored = "https://www.kaggle.com/models/google/bit/frameworks/TensorFlow2/variations/m-r101x1/versions/1"
    found = pool.open_pool(f"{hub_root},kaggle:google/bit/tensorFlow2/m-r50x1,{unmirrored}")
    assert len(found.experts) == 6 and found.baseline.id == "bit/tiny/tiny_upstream/baseline"
    newest, remote = found.experts[-2:]
    assert (newest.handle, newest.id, newest.kind) == (str(bare / "2"), "m-r50x1", "full")
    assert remote.handle == "https://www.kaggle.com/models/google/bit/tensorFlow2/m-r101x1/1"
    assert remote.id == "m-r101x1" and found.epn is not None  # only the root has one
    first = pool.open_pool("kaggle:google/bit/TensorFlow2/m-r50x1/1").experts[0]
    assert first.handle == str(bare / "1") and first.info["label_distribution"]["l_red"] == 0.9


def test_a_kaggle_handle_is_never_taken_for_a_root(hub_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXPERTS_HUB_ROOT", raising=False)
    shutil.copytree(hub_root, tmp_path / "kaggle:google" / "bit" / "tensorFlow2" / "m-r50x1")
    found = pool.open_pool("kaggle:google/bit/tensorFlow2/m-r50x1")
    assert [e.handle for e in found.experts] == [
        "https://www.kaggle.com/models/google/bit/tensorFlow2/m-r50x1"
    ]
    with pytest.raises(pool.PoolError, match=r"handle 'kaggle:google/bit': .*a Kaggle model"):
        pool.open_pool("kaggle:google/bit")
    with pytest.raises(pool.PoolError, match="may not contain '..'"):
        pool.open_pool(f"{hub_root},kaggle:google/bit/tensorFlow2/../../1")

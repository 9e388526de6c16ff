"""The feature-extraction benchmark's JSON output: one entry per module, written
atomically, kept on a rerun with the same settings, rendered as Markdown."""

import json

import pytest
from absl import flags

from experts.models import resnet_v2
from hub_export import modules, tree
from hub_export.bench import feature_extraction

TINY = "r14x0.125"
HANDLE = f"local/experts/bit/{TINY}/toy_upstream.32px/baseline/1"
QUICK = ["--image_size=8", "--batch=2", "--batches=1", "--rounds=1"]


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory):
    """A hub tree with one (fresh) baseline module and its info file."""
    root = tmp_path_factory.mktemp("hub")
    path = root / HANDLE
    model = resnet_v2.ResNetV2(TINY, 0).build_for(8)
    modules.save(modules.resnet_feature_vector(model), path)
    info = {"name": "baseline", "kind": "baseline", "arch": TINY, "handle": HANDLE}
    (path / tree.INFO_FILE).write_text(json.dumps(info))
    return root


def run(*args):
    fv = flags.FlagValues()
    feature_extraction.define_flags(fv)
    fv(["feature_extraction", *QUICK, *args])
    return feature_extraction.run(fv)


def test_output_holds_each_module_and_a_rerun_keeps_it(hub_root, tmp_path, monkeypatch):
    output = tmp_path / "bench" / "hub.json"
    results = run(f"--hub_root={hub_root}", f"--output={output}")
    [(key, entry)] = results["measurements"].items()
    assert key == f"{HANDLE}@8px/batch2"
    assert entry["name"] == "baseline" and entry["kind"] == "baseline" and entry["arch"] == TINY
    assert entry["image_size"] == 8 and entry["batch"] == 2
    assert entry["bare_images_per_second"] > 0 and entry["hub_images_per_second"] > 0
    assert entry["ratio"] == entry["hub_images_per_second"] / entry["bare_images_per_second"]
    assert json.loads(output.read_text()) == results
    assert [p.name for p in output.parent.iterdir()] == ["hub.json"]  # no temporary left

    table = feature_extraction.to_markdown(results)
    assert table.splitlines()[0] == (
        "| module | image size | batch | precision | bare img/s | hub img/s | hub/bare |"
    )
    assert f"| {HANDLE} | 8 | 2 | float32 | " in table

    # The same settings: not measured again, unless asked; other settings: a new entry.
    measured = []

    def fake_measure(who, size, image_size, batch, batches, rounds, precision="float32"):
        measured.append(who["handle"])
        return {**entry, "image_size": image_size, "batch": batch, "ratio": 0.5}

    monkeypatch.setattr(feature_extraction, "measure", fake_measure)
    module = hub_root / HANDLE
    assert run(f"--module={module}", f"--output={output}") == results and not measured
    run(f"--module={module}", f"--output={output}", "--overwrite")
    assert measured == [HANDLE]
    assert json.loads(output.read_text())["measurements"][key]["ratio"] == 0.5
    run(f"--module={module}", f"--output={output}", "--batch=4")
    run(f"--module={module}", f"--output={output}", "--precision=bfloat16")
    assert sorted(json.loads(output.read_text())["measurements"]) == [
        f"{HANDLE}@8px/batch2",
        f"{HANDLE}@8px/batch2/bfloat16",
        f"{HANDLE}@8px/batch4",
    ]


def test_a_precision_runs_both_sides_in_it(hub_root):
    results = run(f"--module={hub_root / HANDLE}", "--precision=bfloat16")
    [(key, entry)] = results["measurements"].items()
    assert key == f"{HANDLE}@8px/batch2/bfloat16" and entry["precision"] == "bfloat16"
    assert entry["bare_images_per_second"] > 0 and entry["hub_images_per_second"] > 0
    assert "| bfloat16 |" in feature_extraction.to_markdown(results)


def test_a_module_that_is_not_one_expert_is_refused(tmp_path):
    module = tmp_path / "epn"
    module.mkdir()
    (module / tree.INFO_FILE).write_text(json.dumps({"kind": "epn", "arch": TINY}))
    with pytest.raises(Exception, match="a epn module is not one expert"):
        run(f"--module={module}")

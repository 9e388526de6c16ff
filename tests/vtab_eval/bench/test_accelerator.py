"""The downstream accelerator table at the smoke size: a fresh module exported by
hub_export.bench.accelerator_module, then timed by vtab_eval.bench.accelerator (figures
are the benchmark's to print, not a test's)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fanout import files
from hub_export.bench import accelerator_module
from tests.bad_input import snapshot, user_files

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def fresh_module(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "accelerator_module"
    accelerator_module.export_fresh("r14x0.125", 32, out)
    return out


def test_the_module_is_exported_whole_with_its_info(fresh_module):
    info = json.loads((fresh_module / "expert_info.json").read_text())
    assert (info["kind"], info["arch"], info["input"]["size"]) == (
        "baseline",
        "r14x0.125",
        [32, 32],
    )
    assert (fresh_module / "saved_model.pb").is_file()
    assert [p.name for p in fresh_module.parent.iterdir()] == ["accelerator_module"]


def test_the_export_replaces_only_its_own_directory(tmp_path):
    mine = user_files(tmp_path / "accelerator_module")
    kept = snapshot(mine)
    with pytest.raises(files.NotOwned, match="holds files hub_export.bench.accelerator_module"):
        accelerator_module.export_fresh("r14x0.125", 8, mine)
    assert snapshot(mine) == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accelerator_module"]  # no temp left


def test_the_binary_fine_tunes_on_two_replicas(fresh_module):
    """The fine-tuning step and feature extraction, in its own process, with the CPU
    split in two before TensorFlow starts."""
    script = (
        "from fanout import distribute\n"
        "distribute.split_cpu(2)\n"
        "from absl import app\n"
        "from vtab_eval.bench import accelerator as b\n"
        "b.define_flags()\n"
        "app.run(b.main, argv=['b', '--preset=smoke', '--strategy=mirrored', '--steps=2',\n"
        f"    '--module={fresh_module}', '--train_images=16', '--feature_batches=1',\n"
        "    '--rounds=1'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "downstream steps: strategy mirrored for fine-tuning" in done.stdout
    rows = {line.split(" | ")[0]: line.split(" | ") for line in done.stdout.splitlines()}
    [_, model, precision, batch, replicas, total, per_device] = rows["| fine-tuning step"]
    assert (model, precision, batch, replicas) == ("r14x0.125 at 32px", "float32", "8", "2")
    total, per_device = (float(x.strip(" |").replace(",", "")) for x in (total, per_device))
    assert total > 0 and abs(per_device - total / 2) <= 1  # figures rounded to integers
    [_, model, _, batch, replicas, *_] = rows["| hub feature extraction"]
    assert (model, batch, replicas) == ("r14x0.125 at 32px", "256", "1")  # one device


def test_a_module_without_info_runs_at_the_presets_size_under_its_handle(fresh_module, tmp_path):
    from vtab_eval.bench import accelerator

    bare = tmp_path / "published"
    bare.mkdir()
    for name in ("saved_model.pb", "variables"):
        (bare / name).symlink_to(fresh_module / name)
    assert accelerator.describe(str(bare), None, "smoke") == (f"{bare} at 16px", 16)
    assert accelerator.describe(str(fresh_module), None, "smoke")[1] == 32
    assert accelerator.describe(str(fresh_module), 24, "smoke") == ("r14x0.125 at 24px", 24)

"""Fine-tuning: zero head, whole network trained, resets, the padded head with a class
mask, the FineTuner cache, and the VTAB protocol."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fanout import module_check
from tests.vtab_eval import hub_fixtures, mirrored_finetune_worker
from vtab_eval import tasks
from vtab_eval.finetune import protocol
from vtab_eval.finetune import runs as tuning
from vtab_eval.finetune import tuner as finetune
from vtab_eval.finetune.hyperparams import HParams

RED = "tests/experts/bit/tiny/tiny_upstream/red/1"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tuner(hub_root):
    return finetune.FineTuner(str(hub_root / RED), max_classes=4, image_size=8, eval_batch=16)


@pytest.fixture(scope="module")
def conv_module(tmp_path_factory):
    """A module with a nonlinearity (conv, ReLU, pooling), so the backbone's updates
    depend on the head's in a non-trivial way."""
    path = tmp_path_factory.mktemp("conv") / "module"
    module = hub_fixtures.TinyModule("conv", seed=3)
    return str(hub_fixtures.save_module(path, module, hub_fixtures.expert_info("conv")))


def _splits(task):
    return {s: task.splits[s] for s in tasks.SPLITS}


@pytest.mark.one_pass
def test_batches_cover_each_epoch_once():
    idx = finetune.batch_indices(10, 4, 5, seed=0)
    assert idx.shape == (5, 4)
    flat = idx.ravel()
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    np.testing.assert_array_equal(idx, finetune.batch_indices(10, 4, 5, seed=0))


def test_head_starts_at_zero_and_the_whole_network_trains(tuner, red_task):
    tuner.reset()
    head = tuner.model.get_layer("head")
    assert not np.any(head.kernel.numpy()) and not np.any(head.bias.numpy())
    backbone = [v for v in tuner.model.trainable_variables if "head" not in v.name]
    assert backbone, "the hub module's variables must be trainable"
    before = [v.numpy().copy() for v in backbone]
    setting = HParams(0.3, 80, 8, warmup_steps=8, decay_boundaries=(48,))
    result = tuner.run(red_task.splits["train800"], red_task.splits["test"], setting, seed=1)
    assert result["first_loss"] == pytest.approx(math.log(4), rel=1e-5)  # zero head: uniform
    assert result["final_loss"] < result["first_loss"]
    assert all(not np.allclose(b, v.numpy()) for b, v in zip(before, backbone, strict=True))
    assert result["accuracy"] >= 0.9  # colour classes are easy for colour features


def test_runs_restart_from_the_initial_weights(tuner, red_task):
    setting = HParams(0.3, 6, 8, warmup_steps=0, decay_boundaries=())
    first = tuner.run(red_task.splits["train800"], red_task.splits["val200"], setting, seed=5)
    second = tuner.run(red_task.splits["train800"], red_task.splits["val200"], setting, seed=5)
    assert first["final_loss"] == pytest.approx(second["final_loss"], rel=1e-6)
    assert first["accuracy"] == second["accuracy"]


def test_a_padded_head_with_a_class_mask_equals_an_exact_head(conv_module, red_task):
    setting = HParams(0.3, 12, 8, warmup_steps=2, decay_boundaries=(8,))
    train, test = red_task.splits["train800"], red_task.splits["test"]
    exact = finetune.FineTuner(conv_module, max_classes=4, image_size=8, eval_batch=16)
    padded = finetune.FineTuner(conv_module, max_classes=11, image_size=8, eval_batch=16)
    want = exact.run(train, test, setting, seed=3)
    got = padded.run(train, test, setting, seed=3, num_classes=4)
    assert got["first_loss"] == pytest.approx(math.log(4), rel=1e-6)  # not log(11)
    np.testing.assert_allclose(padded.losses, exact.losses, rtol=1e-5)
    assert got["accuracy"] == want["accuracy"]
    head, exact_head = padded.model.get_layer("head"), exact.model.get_layer("head")
    # The masked columns get exactly zero gradients: they never move.
    assert not np.any(head.kernel.numpy()[:, 4:]) and not np.any(head.bias.numpy()[4:])
    np.testing.assert_allclose(head.kernel.numpy()[:, :4], exact_head.kernel.numpy(), atol=1e-5)
    for a, b in zip(padded.model.variables[:-2], exact.model.variables[:-2], strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    assert padded.num_parameters(4) == exact.num_parameters() == exact.num_parameters(4)

    # The same tuner serves a task with other classes, then the first again: every run
    # restarts from the initial weights, the head's included.
    two = hub_fixtures.colour_task("two", hub_fixtures.GREENISH[:2], seed=2)
    small = finetune.FineTuner(conv_module, max_classes=2, image_size=8, eval_batch=16)
    want_two = small.run(two.splits["train800"], two.splits["test"], setting, seed=4)
    got_two = padded.run(two.splits["train800"], two.splits["test"], setting, 4, num_classes=2)
    np.testing.assert_allclose(padded.losses, small.losses, rtol=1e-5)
    assert got_two["accuracy"] == want_two["accuracy"]
    again = padded.run(train, test, setting, seed=3, num_classes=4)
    np.testing.assert_allclose(padded.losses, exact.losses, rtol=1e-5)
    assert again["accuracy"] == want["accuracy"]


@pytest.fixture(scope="module")
def other_conv_module(tmp_path_factory):
    """The conv module's program with other weights, saved on its own."""
    path = tmp_path_factory.mktemp("conv") / "other"
    module = hub_fixtures.TinyModule("conv", seed=5)
    return str(hub_fixtures.save_module(path, module, hub_fixtures.expert_info("other")))


def test_mirrored_fine_tuning_matches_a_single_device(
    conv_module, other_conv_module, red_task, tmp_path
):
    """Two replicas of half the batch each give the single-device run up to float
    rounding: losses within 1e-5 relative, final weights within 1e-5, the same accuracy,
    twice (the second run starts from the reset mirrored variables), and once more with
    another module's weights loaded into the mirrored variables."""
    out = tmp_path / "mirrored.json"
    module = mirrored_finetune_worker.__name__
    done = subprocess.run(
        [sys.executable, "-m", module, conv_module, str(out), other_conv_module],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    mirrored = json.loads(out.read_text())
    assert mirrored["replicas"] == 2
    worker = mirrored_finetune_worker
    hp = HParams(**worker.SETTING, decay_boundaries=worker.DECAY_BOUNDARIES)
    single = finetune.FineTuner(conv_module, max_classes=6, image_size=8)
    for seed, run in zip(worker.SEEDS, mirrored["runs"], strict=True):
        result = single.run(red_task.splits["train800"], red_task.splits["test"], hp, seed, 4)
        np.testing.assert_allclose(run["losses"], single.losses, rtol=1e-5)
        assert run["accuracy"] == result["accuracy"]
        assert run["losses"][-1] < run["losses"][0]
    assert max(r["accuracy"] for r in mirrored["runs"]) >= 0.9  # it learns (chance: 0.25)
    for got, want in zip(mirrored["weights"], single.model.variables, strict=True):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    # Every replica applies the same summed gradients: its copies stay identical.
    assert mirrored["replica_spread"] == 0.0
    assert "batch size 7 does not split over 2 replicas" in mirrored["refused"]
    other = finetune.FineTuner(other_conv_module, max_classes=6, image_size=8)
    result = other.run(red_task.splits["train800"], red_task.splits["test"], hp, worker.SEEDS[0], 4)
    np.testing.assert_allclose(mirrored["other"]["losses"], other.losses, rtol=1e-5)
    assert mirrored["other"]["accuracy"] == result["accuracy"]


def test_a_reused_tuner_gives_exactly_a_fresh_tuners_runs(conv_module, red_task):
    """Reuse restores every weight and momentum by assignment, and a fresh tuner of the
    same width traces the same ops on the same values: on one machine, with the same
    thread pools, the runs are bit for bit the same, so exact equality is required."""
    setting = HParams(0.3, 12, 8, warmup_steps=2, decay_boundaries=(8,))
    train, test = red_task.splits["train800"], red_task.splits["test"]
    two = hub_fixtures.colour_task("two", hub_fixtures.GREENISH[:2], seed=2)
    reused = finetune.FineTuner(conv_module, max_classes=5, image_size=8, eval_batch=16)
    reused.run(two.splits["train800"], two.splits["test"], setting, seed=9, num_classes=2)
    got = _two_runs(reused, train, test, setting)
    fresh = finetune.FineTuner(conv_module, max_classes=5, image_size=8, eval_batch=16)
    _assert_bit_equal(got, _two_runs(fresh, train, test, setting))


def _two_runs(tuner, train, test, setting):
    """Runs of seeds 3 and 4 on 4 classes: (results, the last losses, final weights)."""
    results = [tuner.run(train, test, setting, seed=s, num_classes=4) for s in (3, 4)]
    return results, tuner.losses, [v.numpy() for v in tuner.model.variables]


def _assert_bit_equal(got, want):
    assert got[1] == want[1]  # losses
    for a, b in zip(got[0], want[0], strict=True):
        assert (a["accuracy"], a["final_loss"]) == (b["accuracy"], b["final_loss"])
    for a, b in zip(got[2], want[2], strict=True):
        np.testing.assert_array_equal(a, b)


def test_classes_beyond_the_head_or_labels_beyond_the_task_are_refused(tuner, red_task):
    setting = HParams(0.3, 2, 8, warmup_steps=0, decay_boundaries=())
    train, test = red_task.splits["train800"], red_task.splits["test"]
    with pytest.raises(ValueError, match="5 classes does not fit the head of 4 outputs"):
        tuner.run(train, test, setting, seed=0, num_classes=5)
    with pytest.raises(ValueError, match="outside a task of 3 classes"):
        tuner.run(train, test, setting, seed=0, num_classes=3)


def test_a_tuner_given_another_modules_weights_runs_exactly_as_one_built_for_it(
    conv_module, other_conv_module, red_task, hub_root
):
    """Another module of the same program (saved on its own: other function names) has
    its weights loaded into the traced tuner: bit for bit a fresh tuner's runs."""
    other = other_conv_module
    setting = HParams(0.3, 12, 8, warmup_steps=2, decay_boundaries=(8,))
    train, test = red_task.splits["train800"], red_task.splits["test"]
    tuner = finetune.FineTuner(conv_module, max_classes=5, image_size=8, eval_batch=16)
    tuner.run(train, test, setting, seed=9, num_classes=4)  # the weights and head move
    traces = tuner._train_steps.experimental_get_tracing_count()
    assert tuner.load_module(other) > 0 and tuner.handle == other
    got = _two_runs(tuner, train, test, setting)
    assert tuner._train_steps.experimental_get_tracing_count() == traces  # not traced again
    fresh = finetune.FineTuner(other, max_classes=5, image_size=8, eval_batch=16)
    assert fresh.program == tuner.program
    _assert_bit_equal(got, _two_runs(fresh, train, test, setting))
    with pytest.raises(ValueError, match="does not hold the program of"):
        tuner.load_module(str(hub_root / RED))  # mean colour features, not a convolution


def test_weights_that_cannot_be_read_leave_the_tuner_as_it_was(
    conv_module, other_conv_module, tmp_path
):
    damaged = tmp_path / "damaged"
    shutil.copytree(other_conv_module, damaged)
    data = next((damaged / "variables").glob("variables.data-*"))
    data.write_bytes(data.read_bytes()[:16])
    cache = protocol.TunerCache(image_size=8, max_classes=5, eval_batch=16, size=2)
    tuner, _ = cache.get(conv_module)
    with pytest.raises(module_check.DamagedModuleError, match="damaged"):
        tuner.load_module(str(damaged))
    fresh = finetune.FineTuner(conv_module, max_classes=5, image_size=8, eval_batch=16)
    assert tuner.handle == conv_module
    for a, b in zip(tuner.model.variables, fresh.model.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # The cache builds instead, which names the damage as any load does.
    with pytest.raises(module_check.DamagedModuleError, match="damaged"):
        cache.get(str(damaged))
    assert (cache.builds, cache.weight_loads, len(cache)) == (1, 0, 0)


@pytest.mark.one_pass
def test_the_cache_builds_each_program_once_and_drops_the_least_recently_used(
    hub_root, conv_module
):
    red, green, blue = (str(hub_root / RED.replace("red", c)) for c in ("red", "green", "blue"))
    cache = protocol.TunerCache(image_size=8, max_classes=6, eval_batch=16, size=2)
    first, seconds = cache.get(red)
    assert seconds >= first.build_seconds > 0 and first.max_classes == 6
    assert cache.get(red) == (first, 0.0)
    corner, _ = cache.get(green)
    # Blue holds green's program (corner features, other weights): green's tuner takes
    # blue's weights instead of a new tuner being built.
    again, seconds = cache.get(blue)
    assert again is corner and corner.handle == blue and seconds > 0
    assert blue in cache and green not in cache
    assert (cache.builds, cache.weight_loads) == (2, 1)
    cache.get(red)  # red is now the most recently used: the convolution drops blue's.
    cache.get(conv_module)
    assert red in cache and conv_module in cache and blue not in cache and len(cache) == 2
    assert (cache.builds, cache.weight_loads) == (3, 1)
    with pytest.raises(ValueError, match="size >= 1"):
        protocol.TunerCache(image_size=8, max_classes=6, size=0)


def test_protocol_selects_on_val_and_retrains_on_train_plus_val(tuner, red_task):
    good = HParams(0.3, 80, 8, warmup_steps=8, decay_boundaries=(48,))
    useless = HParams(1e-9, 1, 8, warmup_steps=0, decay_boundaries=())
    sizes = []

    def sweep(size):
        sizes.append(size)
        return [useless, good]

    result = protocol.run_protocol(
        tuner, _splits(red_task), sweep, sweep_repeats=2, final_repeats=3, seed=0
    )
    assert len(result["trials"]) == 2 and len(result["test_accuracies"]) == 6
    assert sizes == [40, 50, 40, 50]  # sweep on train800, retrain at train800val200's size
    for trial in result["trials"]:
        assert [r["val_accuracy"] for r in trial["sweep"]][0] < trial["sweep"][1]["val_accuracy"]
        assert trial["chosen_index"] == 1 and trial["chosen"] == good.to_json()
    assert result["median_test_accuracy"] == np.median(result["test_accuracies"]) >= 0.9
    single = protocol.run_protocol(
        tuner, _splits(red_task), lambda n: [good], sweep_repeats=1, final_repeats=1, seed=0
    )
    assert single["trials"][0]["sweep"] == []  # one candidate: nothing to select


def test_smoke_preset_fine_tunes_a_real_task_end_to_end(hub_root, tmp_path):
    from vtab_eval.configs import transfer
    from vtab_eval.features import FeatureStore

    config = transfer.get_config("smoke")
    task = tasks.get_task(
        'mini_dsprites(predicted_attribute="label_x_position",num_classes=16,config="tiny")',
        data_dir=str(tmp_path / "tfds"),
    )
    store = FeatureStore(tmp_path / "features", config.image_size)
    splits = {s: store.images(task, s) for s in tasks.SPLITS}
    handle = str(hub_root / RED.replace("red", "baseline"))
    kwargs = dict(image_size=config.image_size, sweep_repeats=1, final_repeats=1, seed=0)
    result = protocol.finetune(handle, task, splits, tuning.sweep_fn(config), **kwargs)
    assert len(result["test_accuracies"]) == 1 and 0.0 <= result["median_test_accuracy"] <= 1.0
    assert result["trials"][0]["finals"][0]["first_loss"] == pytest.approx(math.log(16), rel=1e-5)
    assert 0 < result["build_seconds"] < result["seconds"]

    # With a cache of wider heads: the same runs; the build counts in the first use only.
    cache = protocol.TunerCache(config.image_size, max_classes=20, eval_batch=256)
    runs = [
        protocol.finetune(handle, task, splits, tuning.sweep_fn(config), tuners=cache, **kwargs)
        for _ in range(2)
    ]
    assert runs[0]["build_seconds"] > 0 and runs[1]["build_seconds"] == 0.0 and cache.builds == 1
    for cached in runs:
        assert cached["num_parameters"] == result["num_parameters"]
        assert cached["test_accuracies"] == result["test_accuracies"]
        final, want = cached["trials"][0]["finals"][0], result["trials"][0]["finals"][0]
        assert final["final_loss"] == pytest.approx(want["final_loss"], rel=1e-5)


def test_a_streamed_test_split_gives_the_same_results(tuner, red_task, hub_root, tmp_path):
    from vtab_eval import images
    from vtab_eval.configs import transfer
    from vtab_eval.features import FeatureStore
    from vtab_eval.run_dir import RunDir

    streamed = images.StreamedSplit(red_task, "test", 8, batch_size=7)  # batches of 7, 7, ...
    assert len(streamed) == len(red_task.splits["test"][1])
    hp = HParams(learning_rate=0.05, steps=6, batch_size=8, warmup_steps=0, decay_boundaries=())
    held = tuner.run(red_task.splits["train800"], red_task.splits["test"], hp, seed=1)
    read = tuner.run(red_task.splits["train800"], streamed, hp, seed=1)
    assert read["accuracy"] == held["accuracy"] and read["final_loss"] == held["final_loss"]
    config = transfer.get_config("smoke")
    config.image_size = 8
    store = FeatureStore(tmp_path / "features", 8)
    config.finetune.max_test_bytes = 0  # nothing fits: stream
    assert isinstance(
        tuning.Tuning(config, store, RunDir(tmp_path)).splits(red_task)["test"],
        images.StreamedSplit,
    )
    config.finetune.max_test_bytes = 1 << 30
    assert isinstance(
        tuning.Tuning(config, store, RunDir(tmp_path)).splits(red_task)["test"], tuple
    )


class _SeedRecorder:
    """A stand-in FineTuner recording the run seeds the protocol gives it."""

    def __init__(self, handle):
        self.handle, self.seeds = handle, []

    def run(self, train, test, hp, seed, num_classes):
        self.seeds.append(seed)
        return {"accuracy": 0.5, "seconds": 0.0}  # the fields the protocol reads

    def num_parameters(self, num_classes):
        return 1


@pytest.mark.one_pass
def test_every_module_gets_the_same_run_seeds():
    # Run i of B and run i of an expert share their seed (the pairs the multi-seed
    # headline resamples together); another transfer seed gives other runs.
    splits = {s: (np.zeros((4, 2, 2, 3), np.uint8), np.zeros(4)) for s in
              ("train800", "val200", "train800val200", "test")}  # fmt: skip
    sweep = lambda n: [HParams(0.01, 2, 2, 0, ()), HParams(0.1, 2, 2, 0, ())]  # noqa: E731

    def seeds(handle, seed):
        tuner = _SeedRecorder(handle)
        protocol.run_protocol(tuner, splits, sweep, sweep_repeats=2, final_repeats=3, seed=seed)
        return tuner.seeds

    assert seeds("bit/baseline", 0) == seeds("bit/full/emoji", 0)
    assert len(set(seeds("bit/baseline", 0))) == 2 * (2 + 3)  # every run its own seed
    assert set(seeds("bit/baseline", 0)).isdisjoint(seeds("bit/baseline", 1))

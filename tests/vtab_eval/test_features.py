"""Task images and the embedding cache."""

import numpy as np
import pytest

from tests.vtab_eval import hub_fixtures
from vtab_eval import features, tasks

RED = "tests/experts/bit/tiny/tiny_upstream/red/1"


@pytest.mark.one_pass
def test_load_images_resizes_to_uint8_squares(red_task):
    images, labels = features.load_images(red_task, "test", 5)
    assert images.shape == (30, 5, 5, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, red_task.splits["test"][1])


def test_outputs_are_cached_by_handle_task_split_and_size(hub_root, red_task, tmp_path):
    handle = str(hub_root / RED)
    store = features.FeatureStore(tmp_path, image_size=8)
    out, labels, seconds = store.outputs(handle, red_task, "train800")
    assert out.shape == (40, 8) and out.dtype == np.float32 and seconds > 0
    path = store.cache_path(handle, red_task, "train800")
    assert path.exists()
    # The mean-colour module's features are a linear map of the mean colour.
    images = red_task.splits["train800"][0].astype(np.float32) / 255
    (kernel,) = [w.numpy() for w in store._layer(handle).weights if w.shape == (3, 8)]
    expected = images.mean(axis=(1, 2)) @ kernel
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)

    # A second store reads the file: same arrays and the originally measured seconds.
    again = features.FeatureStore(tmp_path, image_size=8)
    cached, _, cached_seconds = again.outputs(handle, red_task, "train800")
    np.testing.assert_array_equal(cached, out)
    assert cached_seconds == seconds and again.compute_seconds == 0.0
    keys = {
        path,
        store.cache_path(handle, red_task, "val200"),
        features.FeatureStore(tmp_path, image_size=16).cache_path(handle, red_task, "train800"),
        store.cache_path(str(hub_root / RED.replace("red", "green")), red_task, "train800"),
        store.cache_path(
            handle, hub_fixtures.colour_task("other", hub_fixtures.REDDISH), "train800"
        ),
    }
    assert len(keys) == 5


@pytest.mark.one_pass
def test_a_relative_and_an_absolute_handle_share_one_cache(
    hub_root, red_task, tmp_path, monkeypatch
):
    # The transfer run names local modules as the user gave them; its jobs get them
    # absolute. Both must read one cache, or every feature is computed twice.
    store = features.FeatureStore(tmp_path / "cache", image_size=8)
    absolute = store.cache_path(str(hub_root / RED), red_task, "train800")
    monkeypatch.chdir(hub_root)
    assert store.cache_path(RED, red_task, "train800") == absolute
    assert store.cache_path(f"./{RED}", red_task, "train800") == absolute


@pytest.mark.one_pass
def test_rewriting_a_module_changes_its_cache_key(hub_root, tmp_path, red_task):
    module = tmp_path / "module"
    hub_fixtures.save_module(
        module, hub_fixtures.TinyModule("corner"), hub_fixtures.expert_info("m")
    )
    store = features.FeatureStore(tmp_path / "cache", image_size=8)
    before = store.cache_path(str(module), red_task, "test")
    hub_fixtures.save_module(
        module, hub_fixtures.TinyModule("conv", seed=3), hub_fixtures.expert_info("m")
    )
    assert store.cache_path(str(module), red_task, "test") != before


@pytest.mark.one_pass
def test_non_finite_outputs_are_refused(hub_root, red_task, tmp_path):
    store = features.FeatureStore(tmp_path, image_size=8)
    handle = str(hub_root / RED)
    (kernel,) = [w for w in store._layer(handle).weights if w.shape == (3, 8)]
    kernel.assign(np.full((3, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="non-finite outputs"):
        store.outputs(handle, red_task, "val200")
    assert not store.cache_path(handle, red_task, "val200").exists()


def test_one_trace_per_module_whatever_the_number_of_images(
    hub_root, red_task, green_task, tmp_path
):
    handle = str(hub_root / "tests/experts/bit/tiny/tiny_upstream/baseline/1")
    store = features.FeatureStore(tmp_path, image_size=8, batch_size=16)
    # 40, 30 and 10 images: full batches, and last batches of 8, 14 and 10 (padded).
    for task, split in ((red_task, "train800"), (green_task, "test"), (red_task, "val200")):
        out, labels, _ = store.outputs(handle, task, split)
        images = task.splits[split][0]
        assert out.shape == (len(images), 8) and len(labels) == len(images)
        # A padded batch gives each image the outputs it has on its own.
        layer = store._layer(handle)
        np.testing.assert_allclose(out, layer(features.to_float(images)).numpy(), atol=1e-6)
    _, forward = store._module(handle)
    assert forward.experimental_get_tracing_count() == 1


@pytest.mark.one_pass
def test_task_images_stay_in_memory_up_to_a_byte_budget(red_task, green_task, monkeypatch):
    loads = []
    real = features.load_images

    def counting(task, split, image_size):
        loads.append((task.spec, split))
        return real(task, split, image_size)

    monkeypatch.setattr(features, "load_images", counting)
    store = features.FeatureStore("unused", image_size=8)
    for _ in range(2):  # Eight splits, all kept (the old cache kept six).
        for task in (red_task, green_task):
            for split in tasks.SPLITS:
                store.images(task, split)
    assert len(loads) == 8
    one_split = sum(a.nbytes for a in store.images(red_task, "train800"))
    small = features.FeatureStore("unused", image_size=8, image_cache_bytes=one_split)
    loads.clear()
    for split in ("train800", "test", "train800"):
        small.images(red_task, split)
    assert [split for _, split in loads] == ["train800", "test", "train800"]

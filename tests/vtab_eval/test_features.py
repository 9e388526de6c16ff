"""Task images and the embedding cache."""

import numpy as np
import pytest

from tests.vtab_eval import hub_fixtures
from vtab_eval import features

RED = "tests/experts/bit/tiny/tiny_upstream/red/1"


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


def test_non_finite_outputs_are_refused(hub_root, red_task, tmp_path):
    store = features.FeatureStore(tmp_path, image_size=8)
    handle = str(hub_root / RED)
    (kernel,) = [w for w in store._layer(handle).weights if w.shape == (3, 8)]
    kernel.assign(np.full((3, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="non-finite outputs"):
        store.outputs(handle, red_task, "val200")
    assert not store.cache_path(handle, red_task, "val200").exists()

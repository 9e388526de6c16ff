"""The evaluation side's loader, tested with a small module built here (the published
BiT experts cannot be fetched on these machines). Imports nothing from experts/ or
hub_export/: the loader must work with any module that follows the hub contract."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from vtab_eval.pool import hub_loader

HANDLE_PATH = "google/experts/bit/r50x1/in21k/animal/1"
URL = f"https://tfhub.dev/{HANDLE_PATH}"


def save_module(path, kind="full"):
    """A contract-following module: mean colour -> 4 features, traced for both training
    values, with expert_info.json beside it."""
    kernel = tf.Variable(np.arange(12, dtype=np.float32).reshape(3, 4), name="kernel")
    obj = tf.__internal__.tracking.AutoTrackable()
    obj.variables = [kernel]
    obj.trainable_variables = [kernel]
    obj.regularization_losses = []

    @tf.function
    def call(images, training=False):
        return tf.reduce_mean(images, [1, 2]) @ kernel

    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    for training in (False, True):
        call.get_concrete_function(spec, training=training)
    obj.__call__ = call
    tf.saved_model.save(obj, str(path))
    (path / "expert_info.json").write_text(json.dumps({"kind": kind, "name": path.parent.name}))
    return path


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    save_module(root / HANDLE_PATH)
    save_module(root / "local/experts/bit-adapter/r26x0.25/up/a.b/1", kind="adapter")
    return root


def test_local_path_loads_as_a_trainable_keras_layer(hub_root):
    layer = hub_loader.load(hub_root / HANDLE_PATH, trainable=True)
    model = keras.Sequential([layer, keras.layers.Dense(2)])
    x = tf.fill([2, 5, 7, 3], 0.5)
    expected = np.full([2, 3], 0.5, np.float32) @ np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(layer(x).numpy(), expected)
    assert model(x).shape == (2, 2)
    assert len(layer.trainable_weights) == 1
    assert hub_loader.load(str(hub_root / HANDLE_PATH)).trainable_weights == []


def test_tfhub_urls_resolve_to_a_local_mirror(hub_root, monkeypatch):
    assert hub_loader.resolve(URL, hub_root) == str(hub_root / HANDLE_PATH)
    monkeypatch.setenv(hub_loader.HUB_ROOT_ENV, str(hub_root))
    assert hub_loader.resolve(URL) == str(hub_root / HANDLE_PATH)
    layer = hub_loader.load(URL)
    assert layer(tf.zeros([1, 8, 8, 3])).shape == (1, 4)
    # Not mirrored: left to tensorflow_hub, which would download it.
    other = "https://tfhub.dev/google/experts/bit/r50x1/in21k/flower/1"
    assert hub_loader.resolve(other) == other


def test_bad_handles_are_one_line_errors(tmp_path):
    with pytest.raises(hub_loader.HubLoadError, match="does not exist: not a hub module"):
        hub_loader.resolve(tmp_path / "missing")
    with pytest.raises(hub_loader.HubLoadError, match="has no saved_model.pb"):
        hub_loader.load(tmp_path)
    with pytest.raises(hub_loader.HubLoadError, match="only tfhub.dev and kaggle.com/models URLs"):
        hub_loader.resolve("https://example.com/m/1")
    with pytest.raises(hub_loader.HubLoadError, match="unsupported handle scheme 'gs'"):
        hub_loader.resolve("gs://bucket/m/1")


@pytest.mark.parametrize(
    "handle, name",
    [
        (URL, "animal"),
        ("https://tfhub.dev/google/experts/bit/r50x1/in21k/animal/", "animal"),
        ("runs/hub/local/experts/bit/r18/embedded_upstream/digits/3", "digits"),
        ("my_module", "my_module"),
        ("kaggle:google/bit/tensorFlow2/m-r50x1-animal/1", "m-r50x1-animal"),
        (
            "https://www.kaggle.com/models/google/bit/frameworks/tensorFlow2/"
            "variations/m-r50x1-animal/versions/2",
            "m-r50x1-animal",
        ),
    ],
)
def test_a_handle_names_its_module(handle, name):
    """The one parser of handles names the module a pool shows for a bare handle."""
    assert hub_loader.module_name(handle) == name


def test_file_urls_and_info(hub_root):
    path = hub_root / HANDLE_PATH
    assert hub_loader.resolve(f"file://{path}") == str(path)
    assert hub_loader.read_info(path) == {"kind": "full", "name": "animal"}
    assert hub_loader.read_info(URL, hub_root)["name"] == "animal"
    assert hub_loader.read_info("https://tfhub.dev/google/x/1", hub_root) is None


def test_find_modules(hub_root):
    found = hub_loader.find_modules(hub_root)
    assert [os.path.relpath(p, hub_root) for p, _ in found] == [
        HANDLE_PATH,
        "local/experts/bit-adapter/r26x0.25/up/a.b/1",
    ]
    [(path, info)] = hub_loader.find_modules(hub_root, kind="adapter")
    assert info == {"kind": "adapter", "name": "a.b"}
    with pytest.raises(hub_loader.HubLoadError, match="does not exist"):
        hub_loader.find_modules(hub_root / "nope")

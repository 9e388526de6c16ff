"""A hub module is code: the one loader refuses a module holding any op off the
allow-list (fanout.allowed_ops) before its graphs run, and loads the honest ones (ours,
the test fixtures, a Keras image model, a TF1 SavedModel)."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from fanout import allowed_ops, module_check
from tests.vtab_eval import hostile_modules, hub_fixtures
from vtab_eval.pool import hub_loader


@pytest.fixture(autouse=True)
def _check_on(monkeypatch):
    monkeypatch.delenv(module_check.ALLOW_ENV, raising=False)


@pytest.fixture
def writer(tmp_path):
    target = tmp_path / "leaked.txt"
    path = hub_fixtures.save_module(
        tmp_path / "evil" / "1",
        hub_fixtures.WritesAFile(str(target)),
        hub_fixtures.expert_info("evil"),
    )
    return path, target


@pytest.fixture(scope="module")
def hostiles(tmp_path_factory):
    return hostile_modules.build_all(tmp_path_factory.mktemp("hostile"))


def test_a_module_that_writes_files_is_refused_before_it_runs(writer):
    path, target = writer
    with pytest.raises(module_check.ForbiddenOpError, match=rf"module {path}: op WriteFile"):
        hub_loader.load(str(path))
    assert not target.exists()


@pytest.mark.parametrize("family", hostile_modules.FAMILIES)
def test_each_hostile_family_is_refused_before_it_runs(hostiles, family):
    hostile = hostiles[family]
    with pytest.raises(module_check.ForbiddenOpError) as error:
        hub_loader.load(str(hostile.path), **hostile.kwargs)
    message = str(error.value)
    assert message.startswith(f"module {hostile.path}: op ") and "\n" not in message
    assert family in message and (" in function " in message or " in the graph" in message)
    if family == "DebugNanCount":
        assert "DebugNumericSummary" in message
    if family == "SaveV2":
        assert "MergeV2Checkpoints" in message
    assert not hostile.wrote(), sorted(hostile.effects.rglob("*"))


@pytest.mark.parametrize("family", hostile_modules.FAMILIES)
def test_switched_off_the_check_lets_each_hostile_module_do_harm(hostiles, family, monkeypatch):
    """The hostile modules are real: without the check they write, or leak a secret."""
    hostile = hostiles[family]
    value = ["1", "true", "TRUE", "True"][hostile_modules.FAMILIES.index(family) % 4]
    monkeypatch.setenv(module_check.ALLOW_ENV, value)
    try:
        layer = hub_loader.load(str(hostile.path), **hostile.kwargs)
        images = tf.ones([1, 4, 4, 3])
        features = layer({"images": images} if hostile.kwargs else images).numpy()
        if hostile.reads:
            assert features.min() > hostile_modules.SECRET / 2
        else:
            assert hostile.wrote()
    finally:  # the refusal test looks for these files
        for written in sorted(hostile.effects.rglob("*"), reverse=True):
            if written.name != "secret.csv":
                written.unlink() if written.is_file() else written.rmdir()


@pytest.mark.parametrize("value", ["0", "false", "yes", "off", " 1"])
def test_the_switch_accepts_only_explicit_values(writer, monkeypatch, value):
    path, target = writer
    monkeypatch.setenv(module_check.ALLOW_ENV, value)
    with pytest.raises(ValueError, match=rf"^{module_check.ALLOW_ENV}={value!r}: set it to 1"):
        hub_loader.load(str(path))
    assert not target.exists()


def test_an_empty_switch_keeps_the_check(writer, monkeypatch):
    path, target = writer
    monkeypatch.setenv(module_check.ALLOW_ENV, "")
    with pytest.raises(module_check.ForbiddenOpError, match="op WriteFile"):
        hub_loader.load(str(path))
    assert not target.exists()


def test_honest_modules_pass(hub_root):
    modules = sorted(hub_root.rglob("saved_model.pb"))
    assert len(modules) == 6
    for saved_model in modules:
        module_check.check_module(saved_model.parent)  # restore ops are allowed


def _keras_image_model() -> keras.Model:
    """What the Keras applications are made of (MobileNet's depthwise convolutions and
    ReLU6, batch norm, squeeze-and-excitation, dropout), small."""
    inputs = keras.Input([None, None, 3])
    x = keras.layers.Rescaling(2.0, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("swish")(x)
    squeeze = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = keras.layers.Multiply()([x, keras.layers.Conv2D(8, 1, activation="sigmoid")(squeeze)])
    x = keras.layers.Dropout(0.2)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, keras.layers.Dense(4)(x))


def test_a_keras_image_model_saved_as_a_savedmodel_passes_and_fine_tunes(tmp_path):
    model = _keras_image_model()
    model.save(str(tmp_path / "keras"), save_format="tf")
    layer = hub_loader.load(str(tmp_path / "keras"), trainable=True)
    images = tf.random.stateless_uniform([2, 16, 16, 3], seed=[1, 2])
    # The same float32 ops on the same weights; only how TensorFlow fuses them may differ.
    np.testing.assert_allclose(layer(images), model(images), rtol=1e-5, atol=1e-6)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(images, training=True))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert grads and all(g is not None for g in grads)


def test_an_honest_tf1_savedmodel_passes_its_saver_included(tmp_path):
    path = hostile_modules.tf1_module(tmp_path, hostile=False)
    layer = hub_loader.load(str(path.path), **path.kwargs)
    features = layer({"images": tf.ones([1, 4, 4, 3])})
    np.testing.assert_array_equal(features, np.full([1, 8], 3.0, np.float32))
    assert not path.wrote()


def test_a_tf1_init_op_that_runs_the_savers_save_path_is_refused(tmp_path, monkeypatch):
    """The saver's save path may hold SaveV2 only while nothing but the saver reaches it."""
    hostile = hostile_modules.tf1_module(tmp_path, hostile=False, main_op_saves=True)
    with pytest.raises(
        module_check.ForbiddenOpError, match=r"op SaveV2 \(node save/SaveV2 in the graph\)"
    ):
        hub_loader.load(str(hostile.path), **hostile.kwargs)
    assert not hostile.wrote()
    monkeypatch.setenv(module_check.ALLOW_ENV, "1")
    hub_loader.load(str(hostile.path), **hostile.kwargs)
    assert hostile.wrote()  # loading runs the main_op


def test_the_allow_list_admits_no_op_that_reaches_outside():
    reaching_out = {"PrintV2", "Print", "WriteFile", "ReadFile", "MatchingFiles", "PyFunc"}
    reaching_out |= {"EagerPyFunc", "SaveV2", "MergeV2Checkpoints", "RestoreV2", "Save"}
    reaching_out |= {"CollectiveReduceV2", "Send", "Recv", "Rpc", "WriteSummary"}
    admitted = allowed_ops.ALLOWED_OPS
    assert not admitted & reaching_out
    assert not [op for op in admitted if "Dataset" in op or op.startswith(("Debug", "Save"))]


def test_every_allowed_op_is_a_tensorflow_op():
    """A misspelt name on the list would admit nothing, and hide the op meant."""
    from tensorflow.python.framework import op_def_registry

    listed = allowed_ops.ALLOWED_OPS | allowed_ops.RESTORE_OPS | allowed_ops.SAVE_OPS
    assert sorted(op for op in listed if op_def_registry.get(op) is None) == []
    # The check follows function calls only through FUNCTION_CALLERS' attributes.
    takes_functions = {
        op
        for op in allowed_ops.ALLOWED_OPS
        if any(a.type in ("func", "list(func)") for a in op_def_registry.get(op).attr)
    }
    assert takes_functions == allowed_ops.FUNCTION_CALLERS


def test_a_module_with_a_truncated_variables_file_is_named(tmp_path):
    path = hub_fixtures.save_module(
        tmp_path / "cut" / "1", hub_fixtures.TinyModule("conv"), hub_fixtures.expert_info("cut")
    )
    [data] = (path / "variables").glob("variables.data-*")
    data.write_bytes(data.read_bytes()[:50])
    with pytest.raises(module_check.DamagedModuleError) as error:
        hub_loader.load(str(path))
    message = str(error.value)
    assert message.startswith(f"module {path}: cannot load it (") and "\n" not in message
    assert "export or download the module again" in message


def test_a_module_with_a_corrupt_saved_model_file_is_named(tmp_path):
    path = tmp_path / "corrupt"
    path.mkdir()
    (path / "saved_model.pb").write_bytes(b"not a protocol buffer")
    with pytest.raises(module_check.DamagedModuleError, match=rf"module {path}: cannot read"):
        hub_loader.load(str(path))


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

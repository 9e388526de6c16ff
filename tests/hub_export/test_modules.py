"""Round trips: exported modules through hub.KerasLayer against their source models."""

import functools
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras as keras

from experts.models import resnet_v2
from hub_export import modules

from .conftest import EXPERTS, IMAGE_SIZE, module_path

TOL = {"rtol": 1e-5, "atol": 1e-5}
# Sources run as graphs, like the modules: oneDNN's eager kernels differ from its graph
# kernels by up to ~1e-4 relative on these random models, graphs agree to ~1e-7.
graph = functools.partial(
    tf.function, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)]
)


def source_features(models, kind, expert=None):
    """The source model's pre_logits for a feature-vector module of ``kind``."""
    if kind == "baseline":
        return graph(lambda x: models["baseline"](x)["pre_logits"])
    if kind == "full":
        return graph(lambda x: models[f"full/{expert}"](x)["pre_logits"])
    index = EXPERTS.index(expert)
    return graph(lambda x: models["adapters"](x, expert=index)["pre_logits"])


FEATURE_MODULES = [("baseline", None)] + [(k, e) for k in ("full", "adapter") for e in EXPERTS]


@pytest.mark.parametrize("kind,expert", FEATURE_MODULES)
def test_feature_vector_in_a_sequential_with_a_new_head_equals_the_source(
    hub_tree, loaded, work, images, kind, expert
):
    root, _, _ = hub_tree
    source = source_features(work[1], kind, expert)
    # By path once; the other modules reuse their session-wide load (the same code path
    # in KerasLayer, minus a slow load).
    handle = str(module_path(root, kind, expert)) if kind == "baseline" else loaded(kind, expert)
    layer = hub.KerasLayer(handle, trainable=True)
    head = keras.layers.Dense(5)
    model = keras.Sequential([layer, head])
    for x in images:
        expected = source(x).numpy()
        assert layer(x).shape == (x.shape[0], work[1]["baseline"].feature_dim)
        np.testing.assert_allclose(layer(x).numpy(), expected, **TOL)
        np.testing.assert_allclose(model(x).numpy(), head(expected).numpy(), **TOL)
    # The upstream head is left out: the module holds the backbone (and adapters) only.
    assert not [v for v in layer.weights if "/head/" in v.name]
    assert len(layer.trainable_weights) == len(layer.weights) > 0


def sgd_step(model, x, y):
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(y, model(x), from_logits=True)
    grads = tape.gradient(loss, model.trainable_weights)
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads, model.trainable_weights, strict=True))


@pytest.mark.one_pass
def test_one_training_step_changes_every_module_variable(hub_tree, images):
    root, _, _ = hub_tree
    layer = hub.KerasLayer(str(module_path(root, "full", EXPERTS[0])), trainable=True)
    model = keras.Sequential([layer, keras.layers.Dense(3)])
    model(images[0])
    assert len(model.trainable_weights) == len(layer.trainable_weights) + 2
    before = [v.numpy().copy() for v in layer.trainable_weights]
    sgd_step(model, images[0], np.array([0, 1, 2]))
    unchanged = [
        v.name
        for v, b in zip(layer.trainable_weights, before, strict=True)
        if np.array_equal(v.numpy(), b)
    ]
    assert unchanged == []


@pytest.mark.one_pass
def test_a_frozen_layer_exposes_no_trainable_weights(hub_tree):
    root, _, _ = hub_tree
    layer = hub.KerasLayer(str(module_path(root, "baseline")), trainable=False)
    model = keras.Sequential([layer, keras.layers.Dense(3)])
    model.build([None, IMAGE_SIZE, IMAGE_SIZE, 3])
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) > 0
    assert len(model.trainable_weights) == 2


def test_reusable_savedmodel_attributes_and_serving_signature(loaded, work, images):
    loaded = loaded("baseline")
    assert list(loaded.regularization_losses) == []
    assert len(loaded.trainable_variables) == len(loaded.variables) > 0
    # __call__ is traced for both Python values of training, with a polymorphic input.
    args = [f.structured_input_signature[0] for f in loaded.__call__.concrete_functions]
    traced = {(tuple(images.shape), training) for images, training in args}
    assert traced == {((None, None, None, 3), False), ((None, None, None, 3), True)}
    x = images[1]
    expected = source_features(work[1], "baseline")(x).numpy()
    served = loaded.signatures["serving_default"](images=x)["feature_vector"]
    np.testing.assert_allclose(served.numpy(), expected, **TOL)


@pytest.mark.one_pass
def test_training_passes_through_to_the_module(tmp_path):
    """A module whose output depends on training (dropout) shows what KerasLayer passes."""
    dense = keras.layers.Dense(64, kernel_initializer="ones")
    dropout = keras.layers.Dropout(0.5)

    def forward(images, training):
        return dropout(dense(tf.reduce_mean(images, [1, 2])), training=training)

    dense.build([None, 3])
    modules.save(modules.feature_vector(forward, dense.variables), tmp_path)
    x = tf.fill([4, 8, 8, 3], 0.5)
    inference = np.full([4, 64], 1.5, np.float32)
    trainable = hub.KerasLayer(str(tmp_path), trainable=True)
    np.testing.assert_allclose(trainable(x, training=False).numpy(), inference)
    dropped = trainable(x, training=True).numpy()
    assert (dropped == 0).any() and not np.allclose(dropped, inference)
    # Like BatchNormalization, a frozen KerasLayer always runs in inference mode.
    frozen = hub.KerasLayer(str(tmp_path), trainable=False)
    np.testing.assert_allclose(frozen(x, training=True).numpy(), inference)


def test_packed_module_per_expert_outputs_equal_the_single_adapter_modules(
    hub_tree, loaded, images
):
    root, _, _ = hub_tree
    packed = loaded("packed")
    x = images[1]
    every = packed.all_experts(x).numpy()
    assert every.shape == (x.shape[0], len(EXPERTS), every.shape[-1])
    for index, expert in enumerate(EXPERTS):
        expected = hub.KerasLayer(loaded("adapter", expert))(x).numpy()
        np.testing.assert_allclose(packed(x, index).numpy(), expected, **TOL)
        np.testing.assert_allclose(every[:, index], expected, **TOL)
        sig = packed.signatures["expert"](images=x, expert=tf.constant(index))
        np.testing.assert_allclose(sig["feature_vector"].numpy(), expected, **TOL)
    # The experts differ, so the comparisons above could fail.
    assert not np.allclose(every[:, 0], every[:, 1], atol=1e-3)
    # As a KerasLayer, one expert is chosen by the arguments of the call.
    by_argument = hub.KerasLayer(str(module_path(root, "packed")), arguments={"expert": 1})
    np.testing.assert_allclose(by_argument(x).numpy(), every[:, 1], **TOL)
    served = packed.signatures["serving_default"](images=x)["all_experts"]
    np.testing.assert_allclose(served.numpy(), every, **TOL)


def test_classifier_returns_label_logits_in_label_order(loaded, work, images):
    tree_, models = work
    info = tree_.info
    label_nodes = [info.hierarchy.node_index(label) for label in info.labels]
    module = loaded("classifier")
    x = images[1]
    logits = graph(lambda x: models["baseline"](x)["logits"])(x).numpy()
    assert np.abs(logits[:, label_nodes]).max() > 1e-3  # a perturbed, non-zero head
    np.testing.assert_allclose(hub.KerasLayer(module)(x).numpy(), logits[:, label_nodes], **TOL)
    np.testing.assert_allclose(module.all_logits(x).numpy(), logits, **TOL)
    served = module.signatures["serving_default"](images=x)
    expected = tf.sigmoid(logits[:, label_nodes]).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, **TOL)


def test_epn_returns_expert_logits(loaded, work, images):
    x = images[1]
    expected = graph(lambda x: work[1]["epn"](x)["logits"])(x).numpy()
    assert expected.shape == (x.shape[0], len(EXPERTS))
    np.testing.assert_allclose(hub.KerasLayer(loaded("epn"))(x).numpy(), expected, **TOL)


@pytest.mark.parametrize("kind", ["full", "adapter"])
def test_a_template_refilled_for_two_experts_saves_each_experts_own_weights(
    work, tmp_path, images, kind
):
    """The exporter traces one module per architecture and refills it per expert."""
    models = work[1]
    source = models["baseline" if kind == "full" else "adapters"]
    template = modules.FeatureVectorTemplate(
        *modules.FeatureVectorTemplate.key(source, adapter=kind == "adapter")
    )
    call = template.module.obj.__call__
    traces = [call.experimental_get_tracing_count()]
    for index, expert in enumerate(EXPERTS):
        if kind == "full":
            module = template.fill(models[f"full/{expert}"])
        else:
            module = template.fill(models["adapters"], index)
        assert module is template.module
        modules.save(module, tmp_path / expert)
        traces.append(call.experimental_get_tracing_count())
    # The second expert's save reused the first one's traces, which (with the private
    # save context, when TF has it) are the ones traced when the template was built.
    assert traces[2] == traces[1] == (traces[0] if modules._save_context else traces[1])
    x = images[1]
    outputs = []
    for expert in EXPERTS:
        layer = hub.KerasLayer(str(tmp_path / expert), trainable=True)
        expected = source_features(models, kind, expert)(x).numpy()
        np.testing.assert_allclose(layer(x).numpy(), expected, **TOL)
        assert len(layer.trainable_weights) == len(template.model.variables)
        outputs.append(layer(x).numpy())
    # The experts differ, so each module holds its own expert's weights.
    assert not np.allclose(outputs[0], outputs[1], atol=1e-3)


@pytest.mark.one_pass
def test_a_template_refuses_sources_of_another_architecture(work):
    models = work[1]
    template = modules.FeatureVectorTemplate(*modules.FeatureVectorTemplate.key(models["epn"]))
    with pytest.raises(ValueError, match="does not fit"):
        template.fill(models["adapters"], 0)
    with pytest.raises(ValueError, match="out of range"):
        template.fill(models["adapters"], 2)
    with pytest.raises(ValueError, match="pass expert="):
        template.fill(models["adapters"])


@pytest.mark.one_pass
def test_feature_module_of_a_multi_expert_model_is_refused(work):
    with pytest.raises(ValueError, match="has 2"):
        modules.resnet_feature_vector(work[1]["adapters"])


LOAD_WITHOUT_PROJECT_CODE = """
import sys, numpy as np
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("experts", "hub_export", "vtab_eval"):
            raise ImportError("project code imported while loading: " + name)
sys.meta_path.insert(0, Block())
import tensorflow as tf, tensorflow_hub as hub
layer = hub.KerasLayer(sys.argv[1], trainable=True)
x = tf.random.stateless_uniform([2, 32, 32, 3], seed=[5, 6])
np.save(sys.argv[2], layer(x).numpy())
"""


def test_modules_load_without_project_code(hub_tree, work, tmp_path):
    root, _, _ = hub_tree
    out = tmp_path / "features.npy"
    path = str(module_path(root, "adapter", EXPERTS[1]))
    subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_PROJECT_CODE, path, str(out)],
        check=True,
        cwd=tmp_path,  # not the repository: its packages must not be importable by path
        capture_output=True,
    )
    x = tf.random.stateless_uniform([2, IMAGE_SIZE, IMAGE_SIZE, 3], seed=[5, 6])
    expected = source_features(work[1], "adapter", EXPERTS[1])(x).numpy()
    np.testing.assert_allclose(np.load(out), expected, **TOL)


def test_a_mixed_precision_model_exports_a_float32_module(tmp_path):
    """The module of a model trained in mixed precision computes in float32: the same
    outputs as a float32 model with those weights, not the 16-bit model's."""
    mixed = resnet_v2.ResNetV2("r14x0.125", dtype="mixed_bfloat16").build_for()
    plain = resnet_v2.ResNetV2("r14x0.125", dtype="float32").build_for()
    plain.copy_backbone_from(mixed)
    modules.save(modules.resnet_feature_vector(mixed), tmp_path / "module")
    x = tf.random.stateless_uniform([2, 32, 32, 3], seed=[4, 5])
    layer = hub.KerasLayer(str(tmp_path / "module"))
    exported = graph(lambda images: layer(images, training=False))(x).numpy()
    np.testing.assert_allclose(exported, graph(lambda i: plain(i)["pre_logits"])(x), **TOL)
    assert np.abs(exported - mixed(x)["pre_logits"].numpy()).max() > 1e-3  # not 16-bit
    with pytest.raises(ValueError, match="computes in float32; this model's policy is mixed"):
        modules.resnet_classifier(resnet_v2.ResNetV2("r14x0.125", 3, dtype="mixed_float16"))

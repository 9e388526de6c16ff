"""The objects saved as TF-Hub modules, built from ``ResNetV2`` models.

A module is a bare ``AutoTrackable`` holding the model's variables and a few
``tf.function``s that close over the model; the Keras model itself is not saved. So
a loaded module is pure graphs and variables (no project code, no Keras revival), and
saving skips Keras' tracing of every layer. Feature-vector modules of many experts
share one traced module (``FeatureVectorTemplate``), refilled with each expert's weights.

Every module follows TF-Hub's reusable SavedModel convention, which is what
``hub.KerasLayer(handle, trainable=True)`` relies on:

* ``__call__(images, training=False)``: images float32 ``[batch, h, w, 3]`` in [0, 1],
  any h and w (one trace with a ``[None, None, None, 3]`` input); traced for both
  Python values of ``training``, which the layer passes as a Python bool;
* ``variables`` and ``trainable_variables`` (every variable: experts are fine-tuned
  whole) and ``regularization_losses`` (empty: BiT fine-tunes without weight decay);
* a ``serving_default`` signature for tools that only read signatures.

Modules compute in float32 whatever precision their job trained in (the variables are
float32 in every precision, so the same weights serve both): a saved graph has its
dtypes baked in, and a float32 graph is what published BiT modules are too, so one
downstream mechanism serves ours and theirs alike. Running a module in reduced
precision is the consumer's choice (``fanout.precision``: TensorFlow's automatic
mixed-precision graph rewrite), not the exporter's.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Sequence
from typing import NamedTuple

import tensorflow as tf

from experts.models import resnet_v2
from experts.models.adapters import PAPER_WIDTH

IMAGES = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")
EXPERT = tf.TensorSpec([], tf.int32, name="expert")
SAVE_OPTIONS = tf.saved_model.SaveOptions()


class Module(NamedTuple):
    obj: tf.__internal__.tracking.AutoTrackable
    signatures: dict[str, tf.types.experimental.ConcreteFunction]


def _holder(variables: Sequence[tf.Variable]) -> tf.__internal__.tracking.AutoTrackable:
    obj = tf.__internal__.tracking.AutoTrackable()
    obj.variables = list(variables)
    obj.trainable_variables = [v for v in variables if v.trainable]
    obj.regularization_losses = []
    return obj


try:  # private, hence the fallback (slower saves): see _saving
    from tensorflow.python.saved_model import save_context as _save_context
except ImportError:  # pragma: no cover
    _save_context = None

# Our functions are plain Python over Keras layers (static loops and branches only), so
# autograph would only add tracing time.
function = functools.partial(tf.function, autograph=False)


def _saving():
    """Trace inside this (with the options ``save`` uses): a function's cache key
    includes whether it was traced in a save context, so functions traced outside one
    would be traced a second time by ``tf.saved_model.save``, which is most of an
    export's time. Calls from one function into another hit the cache only when both
    are traced in the same kind of context."""
    if _save_context is None or _save_context.in_save_context():
        return contextlib.nullcontext()
    return _save_context.save_context(SAVE_OPTIONS)


def _trace_both(fn, *specs) -> None:
    # Only traced concrete functions are saved; KerasLayer picks one by a Python bool.
    for training in (False, True):
        fn.get_concrete_function(*specs, training=training)


def feature_vector(
    forward: Callable[[tf.Tensor, bool], tf.Tensor], variables: Sequence[tf.Variable]
) -> Module:
    """An image feature-vector module from ``forward(images, training) -> [b, dim]``."""

    @function
    def call(images, training=False):
        return forward(images, training)

    @function(input_signature=[IMAGES])
    def serve(images):
        return {"feature_vector": call(images, training=False)}

    with _saving():
        _trace_both(call, IMAGES)
        signatures = {"serving_default": serve.get_concrete_function()}
    obj = _holder(variables)
    obj.__call__ = call
    return Module(obj, signatures)


def classifier(
    forward: Callable[[tf.Tensor, bool], dict[str, tf.Tensor]],
    variables: Sequence[tf.Variable],
    output_indices: Sequence[int] | None = None,
) -> Module:
    """A classification module: ``__call__`` returns sigmoid logits ``[b, n]``.

    ``forward(images, training)`` returns the model's dict; ``output_indices`` selects
    (and orders) head outputs, e.g. B's label nodes out of all hierarchy nodes. The
    unselected head is still available as ``all_logits``.
    """
    indices = None if output_indices is None else tf.constant(list(output_indices), tf.int32)

    # Every entry point calls this one function, so the model is traced twice in all
    # (training False and True) however many entry points there are.
    @function
    def outputs(images, training=False):
        out = forward(images, training)
        logits = out["logits"] if indices is None else tf.gather(out["logits"], indices, axis=-1)
        return {"logits": logits, "all_logits": out["logits"], "pre_logits": out["pre_logits"]}

    @function
    def call(images, training=False):
        return outputs(images, training=training)["logits"]

    @function(input_signature=[IMAGES])
    def all_logits(images):
        return outputs(images, training=False)["all_logits"]

    @function(input_signature=[IMAGES])
    def serve(images):
        out = outputs(images, training=False)
        # The heads are multi-label (sigmoid), not softmax.
        return {
            "logits": out["logits"],
            "probabilities": tf.sigmoid(out["logits"]),
            "pre_logits": out["pre_logits"],
        }

    with _saving():
        _trace_both(outputs, IMAGES)
        _trace_both(call, IMAGES)
        all_logits.get_concrete_function()
        signatures = {"serving_default": serve.get_concrete_function()}
    obj = _holder(variables)
    obj.__call__ = call
    obj.all_logits = all_logits
    return Module(obj, signatures)


def headless(model: resnet_v2.ResNetV2) -> resnet_v2.ResNetV2:
    """A copy of ``model`` without its head (same backbone and adapters). Feature-vector
    modules leave the upstream head out: it is unused, would be registered as trainable
    weights without gradients, and is most of a small model's size (8,070 nodes x 512)."""
    copy = resnet_v2.ResNetV2(
        model.size_name, 0, model.num_experts, adapter_scale=model.adapter_scale,
        adapter_width=model.adapter_width, name=model.name, dtype="float32",
    )  # fmt: skip
    copy.build_for()
    copy.copy_backbone_from(model, include_head=False)
    for src, dst in zip(model.adapter_variables, copy.adapter_variables, strict=True):
        dst.assign(src)
    return copy


class FeatureVectorTemplate:
    """One traced feature-vector module, refilled for every expert of one architecture.

    B, the full experts and the adapter experts (one adapter set each) of one work tree
    share a network, so their modules differ only in variable values. Building and
    tracing a module per expert would trace that network again every time, which was
    most of an export's time; instead the module is built and traced once over a
    headless model of its own, and ``fill`` assigns an expert's weights into that
    model's variables. ``tf.saved_model.save`` then reuses the traced concrete
    functions and writes the variables' current values.

    Every variable is assigned on every ``fill``, so nothing carries over from one
    expert to the next; the module ``fill`` returns is shared, so save it before the
    next ``fill``. An adapter expert's template has one adapter set, which the traced
    functions select as the constant expert 0: the expert's index only decides which
    slice of the source adapters is copied into it.
    """

    def __init__(
        self,
        size: str,
        num_experts: int = 0,
        name: str = "resnet",
        adapter_scale: bool = False,
        adapter_width: float = PAPER_WIDTH,
    ):
        if num_experts not in (0, 1):
            raise ValueError(f"a feature-vector module has 0 or 1 adapter sets, not {num_experts}")
        # The source's name: Keras names the variables after it, and the saved
        # variables keep those names.
        self.model = resnet_v2.ResNetV2(
            size, 0, num_experts, adapter_scale=adapter_scale, adapter_width=adapter_width,
            name=name, dtype="float32",
        ).build_for()  # fmt: skip
        model, expert = self.model, 0 if num_experts else None
        self.module = feature_vector(
            lambda images, training: model(images, expert=expert, training=training)["pre_logits"],
            model.variables,
        )

    @staticmethod
    def key(model: resnet_v2.ResNetV2, adapter: bool = False) -> tuple[str, int, str, bool, float]:
        """The template a source model (with ``adapter``: one of its adapter experts)
        fills: size, adapter sets, name, adapter output scales, adapter width."""
        adapters = int(adapter or model.num_experts > 0)
        scale = bool(adapters and model.adapter_scale)
        width = model.adapter_width if adapters else PAPER_WIDTH
        return model.size_name, adapters, model.name, scale, width

    def fill(self, source: resnet_v2.ResNetV2, expert: int | None = None) -> Module:
        """The module with ``source``'s weights: B or a full expert (``expert`` None), a
        one-expert model, or adapter expert ``expert`` of a model with adapters."""
        model = self.model
        if source.num_experts and expert is None:
            if source.num_experts > 1:
                raise ValueError(
                    f"a feature-vector module has one expert; this model has "
                    f"{source.num_experts} (pass expert=, or use packed_adapters for all)"
                )
            expert = 0
        if expert is not None and not 0 <= expert < source.num_experts:
            raise ValueError(f"expert {expert} out of range for {source.num_experts} experts")
        if self.key(source, expert is not None) != self.key(model):
            raise ValueError(
                f"a {self.key(source, expert is not None)} source does not fit this "
                f"{self.key(model)} template (size, adapter sets, name, adapter scales, width)"
            )
        model.copy_backbone_from(source, include_head=False)
        for src, dst in zip(source.adapter_variables, model.adapter_variables, strict=True):
            dst.assign(src[expert : expert + 1])
        return self.module


def resnet_feature_vector(model: resnet_v2.ResNetV2) -> Module:
    """B, a full expert, or one adapter expert (``model.single_expert(e)``); exports of
    many experts reuse a ``FeatureVectorTemplate`` instead."""
    if model.num_experts > 1:
        raise ValueError(
            f"a feature-vector module has one expert; this model has {model.num_experts} "
            "(use single_expert(e), or packed_adapters for all of them)"
        )
    return FeatureVectorTemplate(*FeatureVectorTemplate.key(model)).fill(model)


def packed_adapters(model: resnet_v2.ResNetV2) -> Module:
    """Every adapter expert in one module (the paper's "single model"):

    * ``__call__(images, expert, training=False) -> [b, dim]``: one expert by index,
      e.g. ``hub.KerasLayer(path, arguments={"expert": 3})``;
    * ``all_experts(images) -> [b, num_experts, dim]`` (inference: embedding a task with
      every expert at once; fine-tune one expert through ``__call__``);
    * signatures ``serving_default`` (``all_experts``) and ``expert`` (images, expert).
    """
    if model.num_experts < 1:
        raise ValueError("packed_adapters needs a model with adapter experts")
    model = headless(model)
    num_experts, dim = model.num_experts, model.feature_dim

    @function
    def call(images, expert, training=False):
        return model(images, expert=expert, training=training)["pre_logits"]

    @function(input_signature=[IMAGES])
    def all_experts(images):
        # One expert at a time: running all at once with per-example routing would
        # gather a [batch * experts, c, c/2] kernel per adapter.
        per_expert = tf.map_fn(
            lambda e: call(images, e, training=False),
            tf.range(num_experts),
            fn_output_signature=tf.TensorSpec([None, dim], tf.float32),
        )
        return tf.transpose(per_expert, [1, 0, 2])

    @function(input_signature=[IMAGES])
    def serve_all(images):
        return {"all_experts": all_experts(images)}

    @function(input_signature=[IMAGES, EXPERT])
    def serve_one(images, expert):
        return {"feature_vector": call(images, expert, training=False)}

    with _saving():
        _trace_both(call, IMAGES, EXPERT)
        all_experts.get_concrete_function()
        signatures = {
            "serving_default": serve_all.get_concrete_function(),
            "expert": serve_one.get_concrete_function(),
        }
    obj = _holder(model.variables)
    obj.__call__ = call
    obj.all_experts = all_experts
    return Module(obj, signatures)


def resnet_classifier(
    model: resnet_v2.ResNetV2, output_indices: Sequence[int] | None = None
) -> Module:
    """B with its head (label matching) or the EPN (domain prediction)."""
    if not model.num_classes or model.num_experts:
        raise ValueError("a classifier module needs a plain ResNetV2 with a head")
    if model.dtype_policy.name != "float32":
        raise ValueError(
            f"a classifier module computes in float32; this model's policy is "
            f"{model.dtype_policy.name} (restore its checkpoint into a float32 model)"
        )
    return classifier(
        lambda images, training: model(images, training=training), model.variables, output_indices
    )


def save(module: Module, path: str | os.PathLike) -> None:
    tf.saved_model.save(
        module.obj, os.fspath(path), signatures=module.signatures, options=SAVE_OPTIONS
    )

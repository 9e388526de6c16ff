"""The numeric precision of upstream training, named by ``config.train.precision``.

* ``float32``: everything in float32 (the ``smoke`` and ``cpu`` presets).
* ``mixed_bfloat16``: compute in bfloat16, variables in float32. bfloat16 has
  float32's exponent range, so gradients need no loss scaling.
* ``mixed_float16``: compute in float16, variables in float32; the trainer scales the
  loss dynamically (``keras.mixed_precision.LossScaleOptimizer``: a step whose
  gradients overflow is skipped and the scale halved), since float16 gradients
  underflow.
* ``auto`` (the ``paper`` preset): what the devices at hand run fastest without
  changing the recipe: ``mixed_bfloat16`` on TPUs (their matrix units take bfloat16,
  and Keras' TPU guidance is this policy) and on GPUs of compute capability 8.0 and
  up (bfloat16 tensor cores), ``mixed_float16`` on GPUs of 7.x (float16 tensor cores
  only), ``float32`` otherwise (CPUs: oneDNN runs bfloat16 convolutions fast only on
  CPUs with AMX or AVX-512 BF16, and emulates them elsewhere). It is resolved where
  the model is built, after the strategy has connected to any TPU.

The policy is given to the model (``ResNetV2(dtype=...)``), never set globally, so
one process can hold a mixed-precision model being trained next to float32 ones (B for
evaluation, a hub export) and nothing leaks from one job or test to the next. What
stays float32 inside the model is ``experts.models.resnet_v2``'s to say; variables
always do, so checkpoints, warm starts and hub exports are the same in every precision.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")


def auto_precision() -> str:
    """``auto``'s choice on this process's devices (see the module docstring)."""
    if tf.config.list_logical_devices("TPU"):
        return "mixed_bfloat16"
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "float32"
    capabilities = [
        tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
        for gpu in gpus
    ]
    oldest = min(capabilities)
    if oldest >= (8, 0):
        return "mixed_bfloat16"
    return "mixed_float16" if oldest >= (7, 0) else "float32"


def resolve(name: str) -> str:
    """The Keras policy name for a ``train.precision`` value (``auto`` resolved)."""
    if name not in PRECISIONS:
        raise ValueError(
            f"train.precision: unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}"
        )
    return auto_precision() if name == "auto" else name


def policy(name: str) -> keras.mixed_precision.Policy:
    return keras.mixed_precision.Policy(resolve(name))


def of_config(train_config) -> str:
    """The resolved precision of a train config (float32 for configs recorded before
    the field existed)."""
    return resolve(train_config.get("precision", "float32"))


def needs_loss_scaling(model: keras.Model) -> bool:
    return model.dtype_policy.compute_dtype == "float16"


def reset_loss_scale(optimizer: keras.optimizers.Optimizer) -> None:
    """A loss-scale optimizer's dynamic scale back to its start, as in a fresh one
    (its ``variables`` are the inner optimiser's only; tf_keras exposes the growth
    counter but keeps the scale variable in its private loss-scale state)."""
    if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
        optimizer.dynamic_counter.assign(0)
        optimizer._loss_scale.current_loss_scale.assign(optimizer.initial_scale)

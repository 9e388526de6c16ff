"""Reduced precision for running hub modules, by TensorFlow's graph rewrite.

A hub module is a SavedModel whose graphs have their dtypes baked in: ours, like the
published BiT experts, compute in float32 (see ``hub_export.modules``), and no Keras
dtype policy reaches inside them. What can run such a graph in 16 bits is grappler's
automatic mixed-precision pass, which rewrites a function's graph when it is
instantiated, casting the ops that are safe in 16 bits (convolutions, matrix
products, element-wise ops between them) and keeping reductions, normalisation
statistics and the outputs in float32:

* ``float16``: the ``auto_mixed_precision`` pass, for NVIDIA GPUs of compute
  capability 7.0 and up (and CPUs with AMX-FP16);
* ``bfloat16``: the ``auto_mixed_precision_onednn_bfloat16`` pass, for CPUs whose
  oneDNN build has bfloat16 kernels (AVX512-BF16 or AMX).

Elsewhere TensorFlow skips the pass and the module runs in float32, unchanged (on a
CPU without those instructions the bfloat16 pass is not even registered); ``effective``
says which case applies, and ``vtab_eval``'s ``FeatureStore`` logs it. This is meant for inference:
fine-tuning through the float16 rewrite would also need loss scaling.

The options are process-wide, and a function call's options are part of its runtime
cache key, so the rewrite applies to exactly the calls made inside ``rewrite``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import tensorflow as tf

PRECISIONS = ("float32", "float16", "bfloat16")
REWRITES = {
    "float16": "auto_mixed_precision",
    "bfloat16": "auto_mixed_precision_onednn_bfloat16",
}


def check(precision: str, field: str = "precision") -> str:
    if precision not in PRECISIONS:
        raise ValueError(
            f"{field}: unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
        )
    return precision


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}


def effective(precision: str) -> bool:
    """Whether the rewrite for ``precision`` changes anything on this machine (by the
    conditions TensorFlow checks: a suitable GPU for float16, bfloat16 instructions of
    the CPU for bfloat16)."""
    if check(precision) == "float32":
        return False
    if precision == "float16":
        gpus = tf.config.list_physical_devices("GPU")
        details = [tf.config.experimental.get_device_details(g) for g in gpus]
        return any(d.get("compute_capability", (0, 0)) >= (7, 0) for d in details)
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


@contextlib.contextmanager
def rewrite(precision: str):
    """Calls of TensorFlow functions inside this run with ``precision``'s rewrite;
    ``float32`` changes nothing. The pass is switched off again on the way out (its
    default: nothing in this project turns it on elsewhere)."""
    if check(precision) == "float32":
        yield
        return
    option = REWRITES[precision]
    tf.config.optimizer.set_experimental_options({option: True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({option: False})

"""The tf.distribute strategy named by a flag, for training and fine-tuning alike.

Both sides take the same ``strategy`` and ``tpu_address`` config fields with the same
names, values and meaning, so this factory lives in ``fanout``, which every package
may import and which imports none of them (``experts.training.distribute`` re-exports
it beside what only the upstream trainer needs).

* ``auto``: a TPU when one is reachable, else every local GPU mirrored, else one device.
* ``default``: one device (the current default strategy).
* ``mirrored``: every local GPU, or every logical CPU device when there is no GPU
  (tests split the CPU into two logical devices to run this path for real).
* ``multi_worker_mirrored``: one process per worker, configured by ``TF_CONFIG``.
* ``tpu``: a Cloud TPU; ``tpu_address`` is the TPU name or grpc address ('' for local).
"""

from __future__ import annotations

import os

import tensorflow as tf

STRATEGIES = ("auto", "default", "mirrored", "multi_worker_mirrored", "tpu")


def auto_strategy(tpu_address: str = "") -> tuple[str, str]:
    """What ``auto`` picks, as (strategy, TPU address): ``tpu`` when a TPU address is
    given (``--config.tpu_address`` or ``$TPU_NAME``) or this host has TPU devices
    (``local``), else ``mirrored`` over the GPUs, else ``default``. It looks only at this
    machine: a TPU resolver without an address would query a cloud metadata service."""
    address = tpu_address or os.environ.get("TPU_NAME", "")
    if address:
        return "tpu", address
    if tf.config.list_physical_devices("TPU"):
        return "tpu", "local"
    return ("mirrored" if tf.config.list_physical_devices("GPU") else "default"), ""


def make_strategy(name: str, tpu_address: str = "") -> tf.distribute.Strategy:
    if name == "auto":
        name, tpu_address = auto_strategy(tpu_address)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def split_cpu(num_devices: int = 2) -> None:
    """Splits the physical CPU into logical devices; call before TensorFlow runs any op."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices
    )

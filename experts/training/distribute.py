"""The trainer's tf.distribute helpers.

The strategy named by a flag (``make_strategy``, ``auto_strategy``, ``split_cpu``) is
``fanout.distribute``'s, shared with fine-tuning so that both sides read the same
``strategy`` and ``tpu_address`` fields the same way; it is re-exported here for the
upstream code. Only the trainer needs to know which process is the chief.
"""

from __future__ import annotations

import tensorflow as tf

from fanout.distribute import STRATEGIES, auto_strategy, make_strategy, split_cpu

__all__ = ["STRATEGIES", "auto_strategy", "is_chief", "make_strategy", "split_cpu"]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes summaries, logs and final artefacts."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
    )

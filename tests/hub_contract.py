"""The hub module contract every feature module in a pool meets, whoever made it.

One check, run on real exports (tests/hub_export/test_contract.py) and on the test
fixtures the vtab_eval tests use (tests/vtab_eval/test_contract.py), so the fixtures
cannot drift from what hub_export writes:

* float32 NHWC images in [0, 1], of any size, give finite ``[batch, dim]`` features,
  with ``dim`` the ``feature_dim`` of its ``expert_info.json``;
* ``hub.KerasLayer(handle, trainable=True)`` exposes trainable weights and fine-tunes:
  one gradient step changes the features;
* a ``serving_default`` signature and a ``regularization_losses`` list;
* its ``expert_info.json`` passes the pool's strict reader;
* its graphs hold no op that touches files, the network or processes, beyond restoring
  its own variables: every op is on the allow-list (fanout.module_check).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras as keras

from fanout import module_check
from vtab_eval.pool import expert_pool as pool


def check_feature_module(path: str | Path) -> dict:
    """Asserts the contract for the module at ``path``; returns its expert_info."""
    path = Path(path)
    info = pool.read_info(path / pool.INFO_FILE)
    dim = info["feature_dim"]
    assert info["output"]["feature_vector"] == [None, dim], info["output"]
    module_check.check_module(path)
    loaded = tf.saved_model.load(str(path))
    assert "serving_default" in loaded.signatures, list(loaded.signatures)
    assert isinstance(list(loaded.regularization_losses), list)
    for shape in ([2, 32, 32, 3], [3, 40, 56, 3]):
        images = tf.random.stateless_uniform(shape, seed=[len(shape), shape[1]])
        features = np.asarray(loaded(images, training=False))
        assert features.shape == (shape[0], dim), (path, features.shape)
        assert np.isfinite(features).all(), path
    _check_fine_tunes(str(path))
    return info


def _check_fine_tunes(handle: str) -> None:
    layer = hub.KerasLayer(handle, trainable=True)
    model = keras.Sequential([layer, keras.layers.Dense(2)])
    images = tf.random.stateless_uniform([4, 32, 32, 3], seed=[7, 8])
    labels = tf.constant([0, 1, 0, 1])
    before = layer(images, training=False).numpy()
    assert layer.trainable_weights, f"{handle}: no trainable weights under trainable=True"
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(
            labels, model(images, training=True), from_logits=True
        )
    grads = tape.gradient(loss, model.trainable_weights)
    keras.optimizers.SGD(1.0).apply_gradients(zip(grads, model.trainable_weights, strict=True))
    assert not np.allclose(layer(images, training=False).numpy(), before), handle

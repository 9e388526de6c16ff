"""Small feature matrices the proxies' tests share (no TensorFlow, no modules)."""

import numpy as np
import pytest


def clustered(n=60, d=8, classes=3, spread=0.3, seed=0):
    """`classes` Gaussian clusters in `d` dimensions: (features float32, int labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)) * 2.0
    labels = np.arange(n) % classes
    features = centres[labels] + spread * rng.normal(size=(n, d))
    return features.astype(np.float32), labels


@pytest.fixture
def blobs():
    return clustered()

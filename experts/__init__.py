"""Upstream: BiT ResNet-v2, adapters, label hierarchies, data and expert training."""

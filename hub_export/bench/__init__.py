"""Benchmark binaries of the export: feature extraction through hub modules, and the
fresh module the downstream accelerator table times. No library module imports them."""

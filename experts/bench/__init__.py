"""Benchmark binaries of the upstream: the trainer against a bare step, the train steps
on the devices at hand, the stored bytes of a user's photographs. No library module imports
them."""

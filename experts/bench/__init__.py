"""Benchmark binaries of the upstream: the trainer against a bare step, the train steps
on the devices at hand. No library module imports them."""

"""Benchmark binaries of the fan-out (Ray against local) and what the packages'
accelerator tables share. No library module imports them."""

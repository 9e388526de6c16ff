"""Benchmarks of the evaluation's kernels against reference libraries (`make bench`)."""

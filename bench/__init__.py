"""Benchmarks (`make bench`): every figure is a count, or a ratio to a same-run baseline."""

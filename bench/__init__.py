"""Benchmarks: scripts that print speed and memory figures (run as ``python3 -m bench.NAME``)."""

"""Experiments: studies that train and compare runs (run as ``python3 -m experiments.NAME``)."""

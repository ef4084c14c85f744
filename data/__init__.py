"""Datasets for the trainer: fetch and verify, convert to TFRecords, feed a tf.data pipeline.

``prepare(name, data_dir)`` turns an archive (downloaded, from a mirror, or on disk) into a record
folder; ``data.pipeline`` reads that folder; ``python -m data`` runs ``prepare`` from a shell.
"""
from data.datasets import DATASETS, DatasetInfo
from data.errors import DataError
from data.prepare import prepare
from data.records import read_meta

__all__ = ["DATASETS", "DatasetInfo", "DataError", "prepare", "read_meta"]

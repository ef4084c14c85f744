"""Fixtures shared by the trainer's end-to-end test files."""
import pytest

import train_fixtures as fx


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A tiny Fashion-MNIST-shaped record folder, one per test module."""
    folder = tmp_path_factory.mktemp("data")
    fx.write_tiny_records(folder)
    return folder

"""Fixtures shared by the trainer's end-to-end test files."""
import pytest

import train_fixtures as fx


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A tiny Fashion-MNIST-shaped record folder, one per test module."""
    folder = tmp_path_factory.mktemp("data")
    fx.write_tiny_records(folder)
    return folder


@pytest.fixture
def train_process():
    """train_process(argv, **Popen keywords): train.py as a child process (``fx.subprocess_train``);
    any still running when the test ends (it failed) is killed."""
    started = []

    def start(argv, **kwargs):
        started.append(fx.subprocess_train(argv, **kwargs))
        return started[-1]

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()

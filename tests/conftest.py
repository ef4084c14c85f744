"""Fixtures shared by the trainer's end-to-end test files."""
import signal

import pytest

import train_fixtures as fx


def pytest_configure(config):
    """Give the stop signals the tests send back their usual effect where pytest was started with them
    ignored (a background job of a script ignores SIGINT, ``nohup`` SIGHUP): the programs rightly leave
    an ignored signal ignored, and the processes the tests start would inherit it. A handler set here is
    the default again in those processes. SIGHUP gets one that does nothing, so that pytest itself still
    outlives its terminal under nohup; SIGINT Python's own, which the in-process tests rely on."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, lambda signum, frame: None)


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


# Modules marked slow (``make test-fast`` leaves them out): they train through train.py end to end, run
# clusters of processes, or run a benchmark. The rest checks the parts against references in seconds.
SLOW_MODULES = {"test_train_e2e", "test_train_chaos", "test_train_resume_exact", "test_train_failures",
                "test_train_cluster", "test_train_parallel", "test_train_precision", "test_cluster",
                "test_bench_gpu", "test_bench_langevin_cost", "test_bench_parle", "test_evaluate_flatness"}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)

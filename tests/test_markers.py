"""The lists of test files kept by hand name real files: a misspelt name in the slow marker would quietly
put a slow module in ``make test-fast``, one in bench/on_device.sh would cost a lent GPU's minutes on an
error."""
import os
import re

from conftest import SLOW_MODULES

HERE = os.path.dirname(os.path.abspath(__file__))


def test_every_slow_module_exists():
    missing = [m for m in SLOW_MODULES if not os.path.exists(os.path.join(HERE, m + ".py"))]
    assert not missing


def test_every_file_the_gpu_check_runs_exists():
    with open(os.path.join(os.path.dirname(HERE), "bench", "on_device.sh")) as f:
        script = f.read()
    placement = re.search(r"^placement_tests=(\S+)$", script, re.M).group(1)
    listed = re.search(r"^gpu_files=\((.*?)\)$", script, re.S | re.M).group(1).split()
    assert placement == "tests/test_gpu.py" and placement not in listed  # run once, first, on its own
    missing = [path for path in [placement] + listed if not os.path.exists(os.path.join(os.path.dirname(HERE), path))]
    assert not missing

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


def test_every_file_the_gpu_check_runs_first_exists():
    with open(os.path.join(os.path.dirname(HERE), "bench", "on_device.sh")) as f:
        listed = re.search(r"^gpu_files=\((.*?)\)$", f.read(), re.S | re.M).group(1).split()
    assert "tests/test_gpu.py" in listed
    missing = [path for path in listed if not os.path.exists(os.path.join(os.path.dirname(HERE), path))]
    assert not missing

"""The slow marker names real test modules: a misspelt name would quietly put a slow module in
``make test-fast``."""
import os

from conftest import SLOW_MODULES


def test_every_slow_module_exists():
    here = os.path.dirname(os.path.abspath(__file__))
    missing = [m for m in SLOW_MODULES if not os.path.exists(os.path.join(here, m + ".py"))]
    assert not missing

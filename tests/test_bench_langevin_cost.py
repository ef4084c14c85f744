"""bench/langevin_cost.py on WRN-10-1's variables, one round: it runs and its ratio columns are the ratios
of its millisecond columns (no timing claims: the figures depend on the machine and its load)."""
import math
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def agrees(printed, numerator, denominator, error):
    """Whether a ratio printed to 2 decimals matches numerator / denominator, each known to +-``error``."""
    value = numerator / denominator
    return abs(printed - value) <= 0.005 + abs(value) * (error / abs(numerator) + error / abs(denominator)) + 1e-9


def test_runs_on_a_small_model_and_prints_consistent_ratios():
    out = subprocess.run([sys.executable, "-m", "bench.langevin_cost", "--depth", "10",
                          "--width", "1", "--L", "2", "--rounds", "1"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("WRN-10-1: 25 variables, 0.08 M parameters, L = 2")
    fused, unfused, momentum, draw, drawn_in, f_m, u_m, f_u, less_draw, in_f = map(float, lines[-1].split())
    for ms in (fused, unfused, momentum, draw, drawn_in):
        assert math.isfinite(ms) and ms > 0
    cell = 0.005  # each millisecond figure is printed to 2 decimals
    assert agrees(f_m, fused, momentum, cell)
    assert agrees(u_m, unfused, momentum, cell)
    assert agrees(f_u, fused, unfused, cell)
    assert agrees(less_draw, fused - draw, unfused - draw, 2 * cell)
    assert agrees(in_f, drawn_in, fused, cell)

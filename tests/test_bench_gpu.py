"""bench/gpu.py --smoke as CI runs it: every variant gets a row of finite positive figures whose ratios
agree with its rates (no timing claims: the figures depend on the machine and its load)."""
import math
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The table: momentum and Entropy-SGD (the smoke run's L = 2) at each mode, on real and synthetic input.
EXPECTED = {(source, mode, optimizer) for source in ("real", "synthetic") for mode in ("fp32", "bf16", "bf16+xla")
            for optimizer in ("momentum", "entropy-sgd L=2")}


def smoke_rows():
    """Run bench/gpu.py --smoke; return (stdout, {(input, mode, optimizer): (rate, ratio, vs synthetic, GiB)})."""
    out = subprocess.run([sys.executable, os.path.join(REPO, "bench", "gpu.py"), "--smoke"], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["input", "mode"])
    rows = {}
    for line in lines[header + 1:]:
        source, mode, *optimizer, rate, ratio, vs_synthetic, gib = line.split()
        rows[(source, mode, " ".join(optimizer))] = (float(rate), ratio, vs_synthetic, gib)
    return out.stdout, rows


def agrees(printed, numerator, denominator):
    """Whether a ratio printed to 3 decimals matches two rates printed to 1 decimal, within their rounding."""
    value = numerator / denominator
    return abs(float(printed) - value) <= 5e-4 + value * (0.05 / numerator + 0.05 / denominator)


def test_smoke_prints_every_variant_with_consistent_figures():
    stdout, rows = smoke_rows()
    assert "command: bench/gpu.py --smoke" in stdout
    assert set(rows) == EXPECTED
    for (source, mode, optimizer), (rate, ratio, vs_synthetic, gib) in rows.items():
        assert math.isfinite(rate) and rate > 0
        if optimizer == "momentum":
            assert ratio == "-"
        else:
            assert agrees(ratio, rate, rows[(source, mode, "momentum")][0])
        if source == "synthetic":
            assert vs_synthetic == "-"
        else:
            assert agrees(vs_synthetic, rate, rows[("synthetic", mode, optimizer)][0])
        assert gib == "-" or (math.isfinite(float(gib)) and float(gib) > 0)

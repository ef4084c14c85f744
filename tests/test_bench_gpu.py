"""bench/gpu.py --smoke as CI runs it: every variant gets a row of finite positive figures whose ratios
agree with its rates (no timing claims: the figures depend on the machine and its load); a stop signal
after a timed round gives the table of the complete rounds."""
import math
import os
import re
import signal
import subprocess
import sys

from bench.gpu import measure

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The table it prints: momentum and Entropy-SGD (the smoke run's L = 2) at each mode, on real and synthetic input.
EXPECTED = {(source, mode, optimizer) for source in ("real", "synthetic") for mode in ("fp32", "bf16", "bf16+xla")
            for optimizer in ("momentum", "entropy-sgd L=2")}


def smoke_rows():
    """Run bench/gpu.py --smoke; return (stdout, {(input, mode, optimizer): (rate, ratio, vs synthetic, GiB)})."""
    out = subprocess.run([sys.executable, "-m", "bench.gpu", "--smoke"], cwd=REPO,
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


class StopDuring(object):
    """Stands in for training.stop.StopRequest: a stop requested during the ``turn``-th turn of all."""

    def __init__(self, turn=None):
        self.turn, self.turns = turn, 0

    @property
    def requested(self):
        return self.turn is not None and self.turns >= self.turn


def stand_ins(count, stop):
    """Variants for ``measure`` whose turns take no time and are counted by ``stop``."""
    class StandIn(object):
        def __init__(self):
            self.seconds = []

        def warm_up(self, gpu):
            pass

        def turn(self):
            stop.turns += 1
            return 1.0

    return [StandIn() for _ in range(count)]


def test_measure_times_every_round_when_not_stopped():
    stop = StopDuring()
    variants = stand_ins(3, stop)
    assert measure(variants, 4, False, stop) == 4
    assert [len(v.seconds) for v in variants] == [4, 4, 4]


def test_a_stop_keeps_the_complete_rounds_only():
    stop = StopDuring(turn=3 * 2 + 2)  # the second turn of round 3
    variants = stand_ins(3, stop)
    assert measure(variants, 5, False, stop) == 2
    assert [len(v.seconds) for v in variants] == [2, 2, 2]


def test_a_stop_in_the_first_round_leaves_no_samples():
    stop = StopDuring(turn=2)
    variants = stand_ins(3, stop)
    assert measure(variants, 5, False, stop) == 0
    assert [len(v.seconds) for v in variants] == [0, 0, 0]


def test_sigint_after_a_round_prints_the_table_of_the_rounds_done():
    rounds = 1000  # far more than can run before the signal
    proc = subprocess.Popen([sys.executable, "-m", "bench.gpu", "--model", "lenet", "--batch", "16",
                             "--L", "2", "--rounds", str(rounds), "--evals", "2", "--train-images", "64",
                             "--modes", "fp32", "--inputs", "synthetic"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if line.startswith("round 1/%d done" % rounds):
                proc.send_signal(signal.SIGINT)
                break
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    done = re.search(r"median of (\d+) rounds .* \(stopped by signal %d: (\d+) of %d rounds\)"
                     % (signal.SIGINT, rounds), stdout)
    assert done and done.group(1) == done.group(2) and 1 <= int(done.group(1)) < rounds
    rows = [row.split()[:3] for row in stdout.splitlines()[-2:]]
    assert rows == [["synthetic", "fp32", "momentum"], ["synthetic", "fp32", "entropy-sgd"]]

"""Chaos: a run that saves every step is killed with SIGKILL at random moments, several times, and
resumed with -rl each time; it must end with exactly the weights of an uninterrupted run and leave no
stray file in its checkpoint folder."""
import random
import re
import time

import numpy as np

import train_fixtures as fx
from training import exits

# LeNet (dropout 0.5) with Langevin noise: every random draw must resume exactly. A save every step, an
# evaluation every 4.
CHAOS = ["-opt", "entropy-sgd", "-L", "2", "--set", "epsilon=1e-3", "--set", "checkpoint_every=0.1",
         "--set", "eval_every=1.34", "--max-steps", "40"]
KILLS = 4
LIMIT = 180
# What a finished run leaves in checkpoints/NAME: its lock, state file, settings and keep_checkpoints=2
# saves; best/ holds its state file and one save.
RUN_FILES = re.compile(r"^(\.lock|checkpoint|settings\.json|model-\d+\.(index|data-00000-of-00001))$")
BEST_FILES = re.compile(r"^(checkpoint|model-\d+\.(index|data-00000-of-00001))$")


def has_checkpoint(run):
    return any(run.glob("model-*.index"))


def test_sigkill_at_random_moments_then_resume_ends_at_the_uninterrupted_weights(tmp_path, data_dir, train_process):
    args = fx.train_args(tmp_path, data_dir, *CHAOS)
    assert fx.run_main(args + ["-n", "calm"]) == exits.DONE
    run = tmp_path / "ckpt" / "chaos"
    rng = random.Random(20261129)  # fixed: a failure can be replayed
    for _ in range(KILLS):
        child = train_process(args + ["-n", "chaos"] + (["-rl"] if has_checkpoint(run) else []))
        # killed a few steps in, within the save and evaluation that follow a step's line
        steps, deadline = rng.randint(1, 6), time.time() + LIMIT
        while steps and time.time() < deadline:
            line = child.stderr.readline()
            assert line, "the run ended before it was killed: %s" % child.stderr.read()
            steps -= line.startswith("step ")
        time.sleep(rng.uniform(0.0, 0.05))
        child.kill()
        child.wait()
    finish = train_process(args + ["-n", "chaos"] + (["-rl"] if has_checkpoint(run) else []))
    _, err = finish.communicate(timeout=LIMIT)
    assert finish.returncode == exits.DONE, err
    reference = fx.checkpoint_values(str(tmp_path / "ckpt" / "calm" / "model-40"))
    resumed = fx.checkpoint_values(str(run / "model-40"))
    assert set(resumed) == set(reference)
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)
    stray = [p.name for p in run.iterdir() if p.is_file() and not RUN_FILES.match(p.name)]
    stray += ["best/" + p.name for p in (run / "best").iterdir() if not BEST_FILES.match(p.name)]
    assert not stray
    assert len(list(run.glob("model-*.index"))) == 2 and len(list((run / "best").glob("model-*.index"))) == 1

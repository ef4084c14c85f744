"""A run stopped and resumed with -rl ends bit for bit where an uninterrupted one does, with every random
draw of training on: LeNet's dropout (0.5) and Entropy-SGD's Langevin noise (epsilon > 0), for
Entropy-SGD, Parle (two replicas in one process) and the baselines, and for Entropy-SGD with -g 2 towers,
XLA or fp16, and momentum with bf16 and XLA. The draws are stateless functions of
(seed, where the run is); a stateful random op, whose stream restarts in a new process, fails these tests."""
import numpy as np
import pytest

import train_fixtures as fx
from training import exits

pytestmark = pytest.mark.bitexact

# TINY evaluates every outer step or two (so at STOP and STEPS, in both runs: the best accuracy agrees too).
STEPS, STOP = 4, 2
NOISY = ["--set", "epsilon=0.01"]  # noise that moves the weights visibly (the default epsilon is 1e-4)
RUNS = {
    "entropy-sgd": ["-opt", "entropy-sgd", "-L", "2"],
    "parle": ["-opt", "parle", "--replicas", "2", "-L", "2"],
    "sgd": ["-opt", "sgd"],
    "momentum": ["-opt", "momentum"],
    "adam": ["-opt", "adam"],
    # The same with what else a run may carry: two towers (each its own dropout key), XLA, bf16, and fp16
    # with its loss scale and count of good steps, state a resume must restore (compared like the rest).
    "entropy-sgd-towers": ["-opt", "entropy-sgd", "-L", "2", "-g", "2", "--set", "batch_size=4"],
    "entropy-sgd-xla": ["-opt", "entropy-sgd", "-L", "2", "--xla"],
    "entropy-sgd-fp16": ["-opt", "entropy-sgd", "-L", "2", "--precision", "fp16"],
    "momentum-bf16-xla": ["-opt", "momentum", "--precision", "bf16", "--xla"],
}


def final_values(tmp_path, name):
    """{variable: value} of run ``name``'s checkpoint at the last step."""
    return fx.checkpoint_values(str(tmp_path / "ckpt" / name / ("model-%d" % STEPS)))


def whole_and_resumed(tmp_path, data_dir, args):
    """Train run "whole" to STEPS at once and run "split" to STOP, then on to STEPS with -rl; return
    the final checkpoints of both."""
    args = fx.train_args(tmp_path, data_dir, *args, *NOISY)
    assert fx.run_main(args + ["-n", "whole", "--max-steps", str(STEPS)]) == exits.DONE
    assert fx.run_main(args + ["-n", "split", "--max-steps", str(STOP)]) == exits.DONE
    assert fx.run_main(args + ["-n", "split", "--max-steps", str(STEPS), "-rl"]) == exits.DONE
    return final_values(tmp_path, "whole"), final_values(tmp_path, "split")


@pytest.mark.parametrize("optimizer", list(RUNS))
def test_resumed_run_is_bit_identical_with_dropout_and_noise(tmp_path, data_dir, optimizer):
    whole, split = whole_and_resumed(tmp_path, data_dir, RUNS[optimizer])
    assert set(whole) == set(split) and int(split["global_step"]) == STEPS
    for name in whole:
        np.testing.assert_array_equal(split[name], whole[name], err_msg=name)
    if optimizer == "entropy-sgd":  # another seed ends elsewhere: the runs above did not agree by chance
        args = fx.train_args(tmp_path, data_dir, *RUNS[optimizer], *NOISY, "--seed", "7")
        assert fx.run_main(args + ["-n", "other", "--max-steps", str(STEPS)]) == exits.DONE
        other = final_values(tmp_path, "other")
        assert not np.array_equal(other["model/fc1/weights"], whole["model/fc1/weights"])

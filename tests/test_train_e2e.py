"""train.py end to end on a tiny record folder the test writes: every optimizer, events, checkpoints,
resume (in-process and after SIGTERM) equal to an uninterrupted run, the NaN stop, flag errors,
evaluate.py, and a real TensorBoard server reading the logs."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

import evaluate
import train_fixtures as fx
from training import exits

TRAIN_TAGS = {"loss", "accuracy", "learning_rate", "images_per_sec", "effective_epoch"}
ESGD_TAGS = {"gamma", "inner_loss", "x_mu_norm", "x_xprime_norm"}
TEST_TAGS = {"loss", "accuracy", "error"}


@pytest.mark.parametrize("opt", ["entropy-sgd", "sgd", "momentum", "adam"])
def test_each_optimizer_trains_and_writes_checkpoints_and_events(tmp_path, data_dir, capsys, opt):
    extra = ["-L", "2", "--set", "g0=0.05", "--set", "g1=0.5", "--set", "esgd_learning_rate=0.25"] \
        if opt == "entropy-sgd" else []
    args = fx.train_args(tmp_path, data_dir, "-opt", opt, "--max-steps", "3", "-n", "r", *extra)
    assert fx.run_main(args) == exits.DONE
    err = capsys.readouterr().err
    assert "final test accuracy" in err and "eval step 3" in err
    run = tmp_path / "ckpt" / "r"
    assert (run / "model-3.index").exists() and (run / "checkpoint").exists()
    assert list((run / "best").glob("model-*.index"))
    assert json.loads((run / "settings.json").read_text())["optimizer"] == opt
    train_events = fx.scalar_events(str(tmp_path / "tb" / "r" / "train"))
    test_events = fx.scalar_events(str(tmp_path / "tb" / "r" / "test"))
    expected = TRAIN_TAGS | (ESGD_TAGS if opt == "entropy-sgd" else set())
    assert expected <= set(train_events)
    assert TEST_TAGS <= set(test_events)
    for events in (train_events, test_events):
        for tag, points in events.items():
            assert all(np.isfinite(v) for _, v in points), tag
    per_step = 2 if opt == "entropy-sgd" else 1
    assert [s for s, _ in train_events["loss"]] == [per_step * k for k in (1, 2, 3)]  # gradient evaluations
    assert fx.image_tags(str(tmp_path / "tb" / "r" / "train"))
    np.testing.assert_allclose([v for _, v in train_events["effective_epoch"]],
                               [k * per_step * 8 / fx.TRAIN_SIZE for k in (1, 2, 3)], rtol=1e-6)
    accuracy = dict(test_events["accuracy"])
    np.testing.assert_allclose([v for _, v in test_events["error"]], [1 - v for v in accuracy.values()], atol=1e-6)
    if opt == "entropy-sgd":
        # --set reaches the graph: gamma_k = g0 (1 + g1)^k at outer step k (0-based), lr as set.
        np.testing.assert_allclose([v for _, v in train_events["gamma"]], [0.05, 0.075, 0.1125], rtol=1e-6)
        np.testing.assert_allclose([v for _, v in train_events["learning_rate"]], [0.25] * 3)


@pytest.mark.bitexact
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, data_dir, capsys):
    args = fx.train_args(tmp_path, data_dir, "-opt", "entropy-sgd", "-L", "2", *fx.EXACT)
    assert fx.run_main(args + ["-n", "whole", "--max-steps", "5"]) == exits.DONE
    assert fx.run_main(args + ["-n", "split", "--max-steps", "2"]) == exits.DONE
    capsys.readouterr()
    assert fx.run_main(args + ["-n", "split", "--max-steps", "5", "-rl"]) == exits.DONE
    assert "resuming split: step 2 of 5, effective epoch 0.67" in capsys.readouterr().err
    whole = fx.checkpoint_values(str(tmp_path / "ckpt" / "whole" / "model-5"))
    split = fx.checkpoint_values(str(tmp_path / "ckpt" / "split" / "model-5"))
    assert set(whole) == set(split)
    assert int(split["global_step"]) == 5
    assert any("outer_step" in k for k in split)
    for name in whole:
        np.testing.assert_array_equal(whole[name], split[name], err_msg=name)
    train_events = fx.scalar_events(str(tmp_path / "tb" / "split" / "train"))
    assert [s for s, _ in train_events["loss"]] == [2, 4, 6, 8, 10]  # L = 2 a step; no gap, no duplicate
    whole_events = fx.scalar_events(str(tmp_path / "tb" / "whole" / "train"))
    for tag in ("loss", "effective_epoch", "gamma", "x_mu_norm"):
        np.testing.assert_allclose([v for _, v in train_events[tag]], [v for _, v in whole_events[tag]],
                                   rtol=1e-6, err_msg=tag)


@pytest.mark.bitexact
def test_sigterm_saves_a_final_checkpoint_and_resume_matches(tmp_path, data_dir):
    args = fx.train_args(tmp_path, data_dir, "-opt", "momentum", *fx.EXACT, "--set", "checkpoint_every=100")
    child = fx.subprocess_train(args + ["-n", "term", "--max-steps", "100000"])
    try:
        deadline = time.time() + 120
        for line in child.stderr:
            if line.startswith("step 2/") or time.time() > deadline:
                break
        child.send_signal(signal.SIGTERM)
        _, rest = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == exits.TERMINATED, rest
    assert "stopped by signal %d at step" % signal.SIGTERM in rest
    stop_line = next(line for line in rest.splitlines() if "stopped by signal" in line)
    stopped = int(stop_line.split("at step ")[1].split()[0])
    assert stopped >= 2
    run = tmp_path / "ckpt" / "term"
    assert (run / ("model-%d.index" % stopped)).exists()
    target = stopped + 2
    assert fx.run_main(args + ["-n", "term", "-rl", "--max-steps", str(target)]) == exits.DONE
    assert fx.run_main(args + ["-n", "ref", "--max-steps", str(target)]) == exits.DONE
    resumed = fx.checkpoint_values(str(run / ("model-%d" % target)))
    reference = fx.checkpoint_values(str(tmp_path / "ckpt" / "ref" / ("model-%d" % target)))
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)
    steps = [s for s, _ in fx.scalar_events(str(tmp_path / "tb" / "term" / "train"))["loss"]]
    assert steps == list(range(1, target + 1))


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, data_dir, capsys):
    args = fx.train_args(tmp_path, data_dir, "-opt", "entropy-sgd", "-L", "1", "-n", "nan", "--max-steps", "10",
                      "--set", "checkpoint_every=0.1", "--debug-nan-at-step", "3")
    assert fx.run_main(args) == exits.DIVERGED
    err = capsys.readouterr().err
    assert "NaN or infinite at step 4" in err and "model-3" in err
    run = tmp_path / "ckpt" / "nan"
    assert sorted(p.name for p in run.glob("*.index")) == ["model-2.index", "model-3.index"]
    values = fx.checkpoint_values(str(run / "model-3"))
    assert all(np.all(np.isfinite(v)) for v in values.values())
    assert int(values["global_step"]) == 3


def test_flag_errors_are_one_line_from_the_command_line(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(fx.REPO, "train.py"), "-L", "-1"],
                         capture_output=True, text=True, cwd=fx.REPO)
    assert out.returncode == exits.BAD_FLAGS
    assert out.stderr.strip().count("\n") == 0 and "L must be >= 0" in out.stderr


@pytest.mark.parametrize("argv,status", [(["-h"], exits.DONE), (["-L", "-1"], exits.BAD_FLAGS)])
def test_help_and_flag_errors_answer_before_tensorflow_loads(argv, status):
    # -X importtime lists every module the process imports, one "import time: ... | NAME" line each.
    out = subprocess.run([sys.executable, "-X", "importtime", os.path.join(fx.REPO, "train.py")] + argv,
                         capture_output=True, text=True, cwd=fx.REPO)
    assert out.returncode == status
    imported = [line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines()
                if line.startswith("import time:")]
    assert "argparse" in imported
    assert not [name for name in imported if name.split(".")[0] == "tensorflow"]


def test_start_problems_are_one_line_errors(tmp_path, data_dir, capsys):
    args = fx.train_args(tmp_path, data_dir, "-opt", "sgd", "-n", "x", "--max-steps", "1")
    assert fx.run_main(args + ["-rl"]) == exits.FAILED
    assert "nothing to resume" in capsys.readouterr().err
    assert fx.run_main(args) == exits.DONE
    capsys.readouterr()
    assert fx.run_main(args) == exits.FAILED
    assert "continue it with -rl" in capsys.readouterr().err
    assert fx.run_main(args + ["-rl", "--seed", "7"]) == exits.FAILED
    assert "seed 42 -> 7" in capsys.readouterr().err
    # the evaluation schedule fixes the batches of each batch-norm pass, which evaluate.py finds from it
    assert fx.run_main(args + ["-rl", "--set", "eval_every=2", "--set", "bn_reestimate_batches=3"]) == exits.FAILED
    assert "changed: eval_every 0.34 -> 2.0; bn_reestimate_batches 2 -> 3" in capsys.readouterr().err
    assert fx.run_main(fx.train_args(tmp_path, data_dir, "-n", "y", "-r", str(tmp_path / "none"))) == exits.FAILED
    assert "no checkpoint there" in capsys.readouterr().err
    # A checkpoint of another model, and a damaged one: one line each.
    assert fx.run_main(fx.train_args(tmp_path, data_dir, "-n", "y", "-r", str(tmp_path / "ckpt" / "x" / "model-1"),
                                  "-m", "wrn", "--set", "wrn_depth=10", "--set", "wrn_width=1")) == exits.FAILED
    _error_line(capsys.readouterr().err, "cannot restore")
    for data in (tmp_path / "ckpt" / "x").glob("**/model-1.data-*"):  # the periodic save and best/'s
        data.write_bytes(data.read_bytes()[:100])
    assert fx.run_main(args + ["-rl", "--max-steps", "2"]) == exits.FAILED
    _error_line(capsys.readouterr().err, "no checkpoint in %s restores: model-1 (Read less bytes than requested); "
                "best/model-1 (Read less bytes" % (tmp_path / "ckpt" / "x"))


@pytest.mark.bitexact
def test_restore_starts_from_weights_and_evaluate_reports_the_same_numbers(tmp_path, data_dir, capsys):
    args = fx.train_args(tmp_path, data_dir, "-opt", "adam", "--max-steps", "3")
    assert fx.run_main(args + ["-n", "a"]) == exits.DONE
    final = [line for line in capsys.readouterr().err.splitlines() if line.startswith("eval step 3")][0]
    assert evaluate.main([str(tmp_path / "ckpt" / "a"), "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    # "eval step 3  epoch ...  test loss L  acc A ..." vs "test loss L  accuracy A  error E ..."
    assert final.split("test loss ")[1].split()[0] == out.split("test loss ")[1].split()[0]
    assert final.split("acc ")[1].split()[0] == out.split("accuracy ")[1].split()[0]
    restore = ["-r", str(tmp_path / "ckpt" / "a" / "model-3")]
    assert fx.run_main(args + ["-n", "b", *restore, "--max-steps", "1"]) == exits.DONE
    b = fx.checkpoint_values(str(tmp_path / "ckpt" / "b" / "model-1"))
    assert int(b["global_step"]) == 1
    assert evaluate.main([str(tmp_path / "ckpt" / "nowhere")]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_tensorboard_server_serves_the_scalar_tags(tmp_path, data_dir):
    assert fx.run_main(fx.train_args(tmp_path, data_dir, "-opt", "entropy-sgd", "-L", "2", "-n", "tbrun",
                                  "--max-steps", "2")) == exits.DONE
    port = _free_port()
    tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    server = subprocess.Popen([tensorboard, "--logdir", str(tmp_path / "tb"), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, tags = time.time() + 90, {}
        while time.time() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/data/plugin/scalars/tags" % port, timeout=5) as r:
                    tags = json.loads(r.read())
                if "tbrun/train" in tags and "tbrun/test" in tags:
                    break
            except OSError:
                pass
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert TRAIN_TAGS | ESGD_TAGS <= set(tags["tbrun/train"])
    assert TEST_TAGS <= set(tags["tbrun/test"])


def _error_line(err, fragment):
    """Assert that stderr ends in one ``train.py: error:`` line holding ``fragment``, no traceback."""
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("train.py: error: ") and fragment in last, err


def test_entropy_sgd_with_L0_is_nesterov_sgd_with_the_sgd_recipe(tmp_path, data_dir):
    # Same learning rate, schedule and weight decay as -opt momentum (Nesterov), so the same weights.
    args = fx.train_args(tmp_path, data_dir, *fx.EXACT, "--max-steps", "2", "--set", "learning_rate=0.05",
                      "--set", "weight_decay=0.01")
    assert fx.run_main(args + ["-opt", "entropy-sgd", "-L", "0", "-n", "esgd0"]) == exits.DONE
    assert fx.run_main(args + ["-opt", "momentum", "-n", "nesterov"]) == exits.DONE
    lr = fx.scalar_events(str(tmp_path / "tb" / "esgd0" / "train"))["learning_rate"]
    np.testing.assert_allclose([v for _, v in lr], [0.05, 0.05])
    esgd = fx.checkpoint_values(str(tmp_path / "ckpt" / "esgd0" / "model-2"))
    sgd = fx.checkpoint_values(str(tmp_path / "ckpt" / "nesterov" / "model-2"))
    weights = [k for k in sgd if k.startswith("model/") and "moving" not in k and "Momentum" not in k]
    assert len(weights) > 10
    for name in weights:
        np.testing.assert_allclose(esgd[name], sgd[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_weights_that_overflow_are_never_saved(tmp_path, data_dir, capsys):
    # The loss of step 1 is computed before its update, so it is finite; the update overflows the
    # weights (weight decay 1e10 times rate 1e30). Step 1 is due for a checkpoint: it must not happen.
    args = fx.train_args(tmp_path, data_dir, "-opt", "sgd", "-n", "big", "--max-steps", "3", "--set",
                      "checkpoint_every=0.1", "--set", "learning_rate=1e30", "--set", "weight_decay=1e10")
    assert fx.run_main(args) == exits.DIVERGED
    err = capsys.readouterr().err
    assert "the weights became NaN or infinite at step 1" in err and "none yet" in err
    assert not list((tmp_path / "ckpt" / "big").glob("**/*.index"))


@pytest.mark.parametrize("optimizer,per_step", [(["-opt", "sgd"], 1), (["-opt", "entropy-sgd", "-L", "2"], 2)])
def test_events_written_past_the_last_checkpoint_are_dropped_on_resume(tmp_path, data_dir, optimizer, per_step):
    # A run that dies after logging outer steps 4 and 5 past its checkpoint at 3 (here: the NaN stop, which
    # saves nothing, as a kill would); -rl redoes them. The files then hold steps 4 and 5 twice, and
    # TensorBoard, told by the resumed run's SessionLog.START, shows each step once. The x axis counts
    # gradient evaluations: outer step k is logged at k * L for Entropy-SGD, with the effective epoch
    # that many batches make.
    args = fx.train_args(tmp_path, data_dir, *optimizer, "-n", "purge",
                         "--set", "checkpoint_every=%g" % (0.5 * per_step), "--set", "eval_every=10")
    assert fx.run_main(args + ["--max-steps", "9", "--debug-nan-at-step", "5"]) == exits.DIVERGED
    assert fx.checkpoint_values(str(tmp_path / "ckpt" / "purge"))["global_step"] == 3
    assert fx.run_main(args + ["--max-steps", "7", "-rl"]) == exits.DONE
    log = tmp_path / "tb" / "purge" / "train"
    assert fx.scalar_records(str(log), "loss") == [per_step * k for k in (1, 2, 3, 4, 4, 5, 5, 6, 7)]
    scalars = fx.scalar_events(str(log))
    assert [s for s, _ in scalars["loss"]] == [per_step * k for k in range(1, 8)]
    for step, epoch in scalars["effective_epoch"]:
        assert epoch == pytest.approx(step * 8 / fx.TRAIN_SIZE)
    assert [s for s, _ in fx.scalar_events(str(tmp_path / "tb" / "purge" / "test"))["error"]] == [7 * per_step]


def test_resume_takes_the_best_accuracy_from_the_best_checkpoint(tmp_path, data_dir):
    # Staged: the newest periodic save predates the best one (a run killed between the two), and the
    # best save holds accuracy 1. On -rl no evaluation can beat 1, so best/ must stay as it is.
    args = fx.train_args(tmp_path, data_dir, "-opt", "sgd", "-n", "best", "--set", "eval_every=0.1")
    assert fx.run_main(args + ["--max-steps", "2"]) == exits.DONE
    run = tmp_path / "ckpt" / "best"
    best = checkpoints_in(run / "best")
    assert len(best) == 1
    fx.set_checkpoint_values(str(run / "model-2"), {"best_test_accuracy": np.float32(-1.0)})
    fx.set_checkpoint_values(str(run / "best" / best[0]), {"best_test_accuracy": np.float32(1.0)})
    assert fx.run_main(args + ["--max-steps", "4", "-rl"]) == exits.DONE
    assert checkpoints_in(run / "best") == best
    assert fx.checkpoint_values(str(run / "model-4"))["best_test_accuracy"] == 1.0


def checkpoints_in(folder):
    """Return the sorted checkpoint prefixes (file names) in ``folder``."""
    return sorted(p.name[:-len(".index")] for p in folder.glob("*.index"))


def test_data_and_run_problems_are_one_line_errors(tmp_path, data_dir, capsys, monkeypatch):
    args = fx.train_args(tmp_path, data_dir, "-opt", "sgd", "--max-steps", "1")
    assert fx.run_main(args + ["-n", "big", "--set", "batch_size=64"]) == exits.BAD_FLAGS
    _error_line(capsys.readouterr().err, "batch_size 64 exceeds the 48 training examples")
    (tmp_path / "file").write_text("")
    assert fx.run_main(args + ["-n", "nowhere", "--checkpoint-dir", str(tmp_path / "file" / "ckpt")]) == exits.FAILED
    _error_line(capsys.readouterr().err, "cannot write the run's folders")
    # Damaged records: same size (so they look complete), bytes flipped in the middle.
    damaged = tmp_path / "damaged"
    records = fx.write_tiny_records(damaged)
    path = os.path.join(records, "train.tfrecord")
    content = bytearray(open(path, "rb").read())
    content[len(content) // 2:len(content) // 2 + 64] = bytes(64)
    open(path, "wb").write(bytes(content))
    assert fx.run_main(args + ["-n", "damaged", "--data-dir", str(damaged)]) == exits.FAILED
    _error_line(capsys.readouterr().err, "records in %s are damaged" % records)
    # Ctrl-C before the stop handler exists (here: while the data is prepared).
    from training import run

    def interrupted(_):
        raise KeyboardInterrupt
    monkeypatch.setattr(run, "prepare_records", interrupted)
    assert fx.run_main(args + ["-n", "early"]) == exits.INTERRUPTED
    err = capsys.readouterr().err
    assert err.strip() == "train.py: interrupted; checkpoints saved before now are kept"
    # SIGTERM there (a scheduler's pre-emption) ends the same way, with 143, and the lock's empty folder goes.
    monkeypatch.setattr(run, "prepare_records", lambda _: os.kill(os.getpid(), signal.SIGTERM))
    assert fx.run_main(args + ["-n", "early"]) == exits.TERMINATED
    assert capsys.readouterr().err.strip() == "train.py: interrupted; checkpoints saved before now are kept"
    assert not (tmp_path / "ckpt" / "early").exists()
    # SIGHUP (the terminal or ssh session gone) likewise, with 129.
    monkeypatch.setattr(run, "prepare_records", lambda _: os.kill(os.getpid(), signal.SIGHUP))
    assert fx.run_main(args + ["-n", "early"]) == exits.HUNG_UP == 129
    assert capsys.readouterr().err.strip() == "train.py: interrupted; checkpoints saved before now are kept"


@pytest.mark.bitexact
def test_evaluate_reestimates_batch_norm_at_x_on_the_batches_the_run_read(tmp_path, data_dir, capsys):
    """A checkpoint saved between evaluations holds statistics collected at the Langevin iterates x':
    evaluate.py re-estimates them at x first, as train.py does, whatever the checkpoint holds, on the
    batches the run's evaluation at that step read (here the fifth and sixth of the stream: evaluations at
    steps 1, 2 and 3), whatever --set changes for the local-entropy estimate."""
    args = fx.train_args(tmp_path, data_dir, "-opt", "entropy-sgd", "-L", "2", "--max-steps", "3", "-n", "e",
                         "--set", "eval_every=0.25", *fx.EXACT)
    assert fx.run_main(args) == exits.DONE
    evals = [line for line in capsys.readouterr().err.splitlines() if line.startswith("eval step")]
    assert [line.split()[2] for line in evals] == ["1", "2", "3"]
    final = evals[-1]
    prefix = str(tmp_path / "ckpt" / "e" / "model-3")
    moving = {k: v for k, v in fx.checkpoint_values(prefix).items() if k.endswith(("moving_mean", "moving_variance"))}
    assert moving
    # what x' statistics could be: anything but the statistics at x
    fx.set_checkpoint_values(prefix, {k: v + 3.0 for k, v in moving.items()})
    assert evaluate.main([prefix, "--data-dir", str(data_dir), "--set", "L=20", "--set", "eval_every=5"]) == 0
    out = capsys.readouterr().out
    assert final.split("test loss ")[1].split()[0] == out.split("test loss ")[1].split()[0]
    assert final.split("acc ")[1].split()[0] == out.split("accuracy ")[1].split()[0]

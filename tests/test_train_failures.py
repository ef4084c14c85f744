"""What a user can do to a run, done for real: Ctrl-C with the log pipe gone, damaged and half-written
checkpoints, a full disk (a real tmpfs), two runs on one folder, records damaged while it runs. Each ends
in one line and a non-zero status, loses no trained step that could be saved, and a resumed run ends at
the weights of an uninterrupted one."""
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import evaluate
import train_fixtures as fx
from tfcompat import tf
from training import evaluation, exits, loop

LIMIT = 180  # seconds any one child process may take
# Momentum on WRN-10-1 without noise or dropout: quick, and runs that should agree agree bit for bit. No
# batch-norm re-estimation: a run's final checkpoint holds the statistics of its final evaluation, so it
# would differ from the periodic save at that step of a longer reference run (test_train_resume_exact
# covers resuming with it).
RUN = ["-opt", "momentum", *fx.EXACT, "--set", "bn_reestimate=false"]


def run_args(tmp_path, data_dir, name, *extra):
    return fx.train_args(tmp_path, data_dir, *RUN, "-n", name, *extra)


def last_line(err):
    """The last line of ``err``, asserting there is no traceback before it."""
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def saved_steps(folder):
    return sorted(int(p.name[len("model-"):-len(".index")]) for p in folder.glob("model-*.index"))


def assert_same_weights(prefix, reference):
    got, want = fx.checkpoint_values(str(prefix)), fx.checkpoint_values(str(reference))
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def wait_for_line(proc, start, deadline=LIMIT):
    """Read ``proc``'s stderr until a line starting with ``start``; return that line."""
    end = time.time() + deadline
    while time.time() < end:
        line = proc.stderr.readline()
        assert line, "the process ended first: %s" % proc.stderr.read()
        if line.startswith(start):
            return line
    raise AssertionError("no line %r within %d s" % (start, deadline))


@pytest.mark.parametrize("output", ["closed pipe", "/dev/full"])
def test_ctrl_c_saves_the_final_checkpoint_whatever_stdout_and_stderr_are(tmp_path, data_dir, train_process, output):
    # `train.py ... 2>&1 | tee log` and Ctrl-C: tee dies first, so every write of the run fails from then on.
    args = run_args(tmp_path, data_dir, "pipe", "--set", "checkpoint_every=100", "--set", "eval_every=100",
                    "--max-steps", "100000")
    if output == "closed pipe":
        child = train_process(args, stderr=subprocess.STDOUT)
        child.stderr = child.stdout
        wait_for_line(child, "step 2/")
        child.stdout.close()
    else:
        with open("/dev/full", "w") as full:
            child = train_process(args, stdout=full, stderr=full)
        deadline = time.time() + LIMIT
        while not fx.event_files(tmp_path / "tb" / "pipe" / "train") and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # the stop handler is installed right after the event files; let a few steps run
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=LIMIT) == exits.INTERRUPTED
    run = tmp_path / "ckpt" / "pipe"
    steps = saved_steps(run)
    assert len(steps) == 1 and steps[0] >= 1  # the stop's own save: no periodic save was due
    assert fx.checkpoint_values(str(run))["global_step"] == steps[0]


def test_a_hang_up_saves_the_step_reached_like_ctrl_c(tmp_path, data_dir, train_process):
    # The terminal or ssh session the run was started from goes away: SIGHUP, which would otherwise end
    # the process on the spot, unsaved.
    args = run_args(tmp_path, data_dir, "hup", "--set", "checkpoint_every=100", "--set", "eval_every=100",
                    "--max-steps", "100000")
    child = train_process(args)
    wait_for_line(child, "step 2/")
    child.send_signal(signal.SIGHUP)
    _, err = child.communicate(timeout=LIMIT)
    assert child.returncode == exits.HUNG_UP == 129
    run = tmp_path / "ckpt" / "hup"
    steps = saved_steps(run)
    assert len(steps) == 1 and steps[0] >= 2  # the stop's own save: no periodic save was due
    assert last_line(err) == ("stopped by signal %d at step %d (effective epoch %.2f); saved %s. Continue with -rl."
                              % (signal.SIGHUP, steps[0], steps[0] / 6.0, run / ("model-%d" % steps[0])))


def test_ctrl_c_is_heard_during_a_long_step_and_a_second_aborts_it(tmp_path, data_dir, train_process):
    # One Entropy-SGD step of 200,000 Langevin steps: minutes. The first Ctrl-C is acknowledged at once
    # (the step runs aside, training.stop.run_aside), and the second ends the run without waiting for the
    # step: the session's closing cancels it. Nothing is saved: no step ended.
    args = fx.train_args(tmp_path, data_dir, "-opt", "entropy-sgd", "-L", "200000", *fx.EXACT, "-n", "long",
                         "--max-steps", "1")
    child = train_process(args)
    wait_for_line(child, "starting long")
    time.sleep(3)  # into the first step
    child.send_signal(signal.SIGINT)
    deaf = threading.Timer(30, child.kill)  # a run that does not hear it ends the wait below, failing it
    deaf.start()
    try:
        wait_for_line(child, "stopping after this step (again to abort)")
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        deaf.cancel()
    assert child.returncode == exits.INTERRUPTED
    assert last_line(err) == "train.py: interrupted; checkpoints saved before now are kept"
    assert saved_steps(tmp_path / "ckpt" / "long") == []


# A session.run given up (a signal's exception left run_aside's wait) while one long operation still runs,
# its session never closed; then the process ends through stop.end_process.
GIVEN_UP = """
import os, signal, sys, threading
from tfcompat import tf
from training import stop
with tf.Graph().as_default() as g:
    a = tf.random.normal([5000, 5000])
    product = tf.reduce_sum(tf.matmul(tf.matmul(a, a), tf.matmul(a, a)))
session = tf.Session(graph=g)
threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
stop.end_process(stop.run_stoppable(lambda: stop.run_aside(session.run, product), "interrupted"))
"""


def test_a_process_that_gave_up_a_run_ends_with_its_status_not_a_crash():
    # The interpreter's teardown under a TensorFlow operation still running crashes it (status 139, as
    # with a third Ctrl-C while the session's closing waits for the step): end_process ends it at once.
    ended = subprocess.run([sys.executable, "-c", GIVEN_UP], cwd=fx.REPO, capture_output=True, text=True,
                           timeout=LIMIT)
    assert ended.returncode == exits.INTERRUPTED, ended.stderr
    assert ended.stderr.strip().splitlines()[-1] == "interrupted"


def failing(real, at_call, error):
    """``real`` that raises ``error`` (a TensorFlow error) on its ``at_call``-th call instead of running."""
    calls = []

    def call(*args, **kwargs):
        calls.append(args)
        if len(calls) == at_call:
            raise error
        return real(*args, **kwargs)
    return call


OOM = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[128,160,32,32]")
DAMAGED = tf.errors.DataLossError(None, None, "corrupted record at 1024")


def test_out_of_memory_in_an_evaluation_saves_the_step_reached(tmp_path, data_dir, capsys, monkeypatch):
    # A GPU out of memory in the second evaluation of the test split (step 12; no periodic save due): the
    # model's state is whole, so it is saved, and the line says what to do.
    monkeypatch.setattr(evaluation, "evaluate", failing(evaluation.evaluate, 2, OOM))
    args = run_args(tmp_path, data_dir, "oom", "--set", "checkpoint_every=100", "--set", "eval_every=1",
                    "--set", "bn_reestimate=true", "--max-steps", "1000")
    assert fx.run_main(args) == exits.FAILED
    run = tmp_path / "ckpt" / "oom"
    assert last_line(capsys.readouterr().err) == (
        "error: TensorFlow failed (OOM when allocating tensor with shape[128,160,32,32]) at step 12; saved %s. "
        "Free the device's memory and continue with -rl, or train on with a smaller batch_size as a new run "
        "(-n NEW -r CHECKPOINT)." % (run / "model-12"))
    assert saved_steps(run) == [12]
    saved = fx.checkpoint_values(str(run))
    assert saved["global_step"] == 12
    variances = [v for name, v in saved.items() if name.endswith("moving_variance")]
    assert variances and all(v.min() > 0 for v in variances)  # the statistics of a whole pass


def test_a_tensorflow_error_in_the_batch_norm_pass_saves_nothing(tmp_path, data_dir, capsys, monkeypatch):
    # The pass zeroes the statistics before it sums them: failed half-way, they are not worth saving.
    from training.bn import BatchNormReestimator
    run_pass, passes = BatchNormReestimator.run, []

    def fails_half_way(self, sess, batches):
        passes.append(batches)
        if len(passes) == 2:
            sess.run(self._reset)
            raise DAMAGED
        return run_pass(self, sess, batches)
    monkeypatch.setattr(BatchNormReestimator, "run", fails_half_way)
    args = run_args(tmp_path, data_dir, "bn", "--set", "checkpoint_every=100", "--set", "eval_every=1",
                    "--set", "bn_reestimate=true", "--max-steps", "1000")
    assert fx.run_main(args) == exits.FAILED
    line = last_line(capsys.readouterr().err)
    run = tmp_path / "ckpt" / "bn"
    assert line.startswith("error: the fashion-mnist records under %s are damaged (corrupted record at 1024) "
                           "at step 12; the last checkpoint is " % data_dir), line
    assert saved_steps(run) == []  # best/ holds step 6, from the whole pass of the first evaluation


@pytest.mark.parametrize("optimizer, error, saved", [
    (["-opt", "momentum"], DAMAGED, True),            # one minibatch a step, read before any write
    (["-opt", "entropy-sgd", "-L", "2"], DAMAGED, False),  # the second may be read with x' in the variables
    (["-opt", "momentum"], OOM, False),               # any op of the step: some variables may be updated
])
def test_a_tensorflow_error_within_a_step_saves_only_whole_steps(tmp_path, data_dir, capsys, monkeypatch,
                                                                 optimizer, error, saved):
    monkeypatch.setattr(loop.OuterStep, "__call__", failing(loop.OuterStep.__call__, 5, error))
    args = run_args(tmp_path, data_dir, "step", *optimizer, "--set", "checkpoint_every=100",
                    "--set", "eval_every=100", "--max-steps", "1000")
    assert fx.run_main(args) == exits.FAILED
    line = last_line(capsys.readouterr().err)
    run = tmp_path / "ckpt" / "step"
    if saved:
        assert " at step 4; saved %s. " % (run / "model-4") in line
        assert saved_steps(run) == [4]
    else:
        assert " at step 4; the last checkpoint is none yet. " in line
        assert saved_steps(run) == []
    assert line.startswith("error: the fashion-mnist records under %s are damaged (corrupted record at 1024)"
                           % data_dir if error is DAMAGED else
                           "error: TensorFlow failed (OOM when allocating tensor with shape[128,160,32,32])")


def test_a_tensorflow_error_before_training_is_one_line(tmp_path, data_dir, capsys, monkeypatch):
    # Out of memory while the variables are initialised: nothing trained, nothing to save.
    from training import sessions
    monkeypatch.setattr(sessions, "restore_state", failing(sessions.restore_state, 1, OOM))
    assert fx.run_main(run_args(tmp_path, data_dir, "init")) == exits.FAILED
    assert last_line(capsys.readouterr().err) == (
        "train.py: error: TensorFlow failed (OOM when allocating tensor with shape[128,160,32,32])")


def test_a_stop_during_the_last_evaluation_lets_the_run_finish(tmp_path, data_dir, capsys, monkeypatch):
    # Ctrl-C while the last step is evaluated: the run is complete, so it ends as done, with its final line
    # (a study runner reading status 130 would otherwise take the finished run for a stopped one).
    evaluate = evaluation.evaluate

    def interrupted(*args):
        os.kill(os.getpid(), signal.SIGINT)
        return evaluate(*args)

    monkeypatch.setattr(evaluation, "evaluate", interrupted)
    args = run_args(tmp_path, data_dir, "last", "--set", "checkpoint_every=100", "--set", "eval_every=100")
    assert fx.run_main(args + ["--max-steps", "2"]) == exits.DONE
    assert last_line(capsys.readouterr().err).startswith("final test accuracy")
    assert saved_steps(tmp_path / "ckpt" / "last") == [2]


def test_resume_skips_damaged_newest_checkpoints_and_says_why(tmp_path, data_dir, capsys):
    assert fx.run_main(run_args(tmp_path, data_dir, "ref", "--max-steps", "10")) == exits.DONE
    args = run_args(tmp_path, data_dir, "hurt")
    assert fx.run_main(args + ["--max-steps", "6"]) == exits.DONE
    run = tmp_path / "ckpt" / "hurt"
    assert saved_steps(run) == [4, 6]
    data = next(run.glob("model-6.data-*"))
    data.write_bytes(data.read_bytes()[:-100])  # cut short, as by a full disk or a partial copy
    capsys.readouterr()
    # A fresh start is refused (it would overwrite the run), damaged checkpoint or not.
    assert fx.run_main(args + ["--max-steps", "8"]) == exits.FAILED
    assert "already holds checkpoints: continue it with -rl" in last_line(capsys.readouterr().err)
    # evaluate.py takes the newest checkpoint that reads, and says which it skipped
    assert evaluate.main([str(run), "--data-dir", str(data_dir)]) == 0
    captured = capsys.readouterr()
    assert "skipped model-6 (" in captured.err and "evaluating model-4" in captured.err
    assert str(run / "model-4") in captured.out
    assert evaluate.main([str(run / "model-6"), "--data-dir", str(data_dir)]) == 1
    assert "cannot read the checkpoint at %s: model-6 (" % (run / "model-6") in last_line(capsys.readouterr().err)
    # -rl resumes from model-4 and ends where an uninterrupted run ends
    assert fx.run_main(args + ["--max-steps", "8", "-rl"]) == exits.DONE
    err = capsys.readouterr().err
    assert "skipped model-6 (" in err and "; resuming from model-4" in err
    assert_same_weights(run / "model-8", tmp_path / "ckpt" / "ref" / "model-8")
    # The newest index gone: the same, and evaluate.py finds the older one too.
    (run / "model-8.index").unlink()
    assert evaluate.main([str(run), "--data-dir", str(data_dir)]) == 0
    assert "skipped model-8 (its .index file is missing)" in capsys.readouterr().err
    assert fx.run_main(args + ["--max-steps", "10", "-rl"]) == exits.DONE
    assert "skipped model-8 (its .index file is missing); resuming from model-6" in capsys.readouterr().err
    assert_same_weights(run / "model-10", tmp_path / "ckpt" / "ref" / "model-10")
    assert saved_steps(run) == [8, 10]  # the damaged saves were replaced or rotated out
    # best/ damaged: the best accuracy so far comes from the checkpoint resumed, and one line says so
    for data in (run / "best").glob("model-*.data-*"):
        data.write_bytes(b"")
    assert fx.run_main(args + ["--max-steps", "11", "-rl"]) == exits.DONE
    assert "cannot read the best accuracy from %s (" % (run / "best") in capsys.readouterr().err
    # settings.json cut short (a partial copy): one line each, saying what to do
    settings = run / "settings.json"
    settings.write_text(settings.read_text()[:30])
    assert fx.run_main(args + ["--max-steps", "13", "-rl"]) == exits.FAILED
    assert "settings.json is damaged (" in last_line(capsys.readouterr().err)
    assert evaluate.main([str(run), "--data-dir", str(data_dir)]) == 1
    assert "settings.json is damaged (" in last_line(capsys.readouterr().err)


def test_a_run_killed_before_its_first_periodic_save_resumes_from_best(tmp_path, data_dir, capsys):
    # An evaluation every 2 steps, periodic saves every 100 epochs: until the end only best/ holds saves.
    args = run_args(tmp_path, data_dir, "early", "--set", "checkpoint_every=100", "--set", "eval_every=0.34")
    assert fx.run_main(args + ["--max-steps", "4"]) == exits.DONE
    run = tmp_path / "ckpt" / "early"
    for path in list(run.glob("model-4.*")) + [run / "checkpoint"]:
        path.unlink()  # as if killed before the final save
    best = saved_steps(run / "best")
    assert len(best) == 1
    assert fx.run_main(args + ["--max-steps", "4"]) == exits.FAILED  # a fresh start would overwrite best/
    assert "already holds checkpoints" in last_line(capsys.readouterr().err)
    assert fx.run_main(args + ["--max-steps", "6", "-rl"]) == exits.DONE
    assert "resuming early: step %d of 6" % best[0] in capsys.readouterr().err
    assert fx.run_main(run_args(tmp_path, data_dir, "ref", "--set", "checkpoint_every=100", "--set",
                                "eval_every=0.34", "--max-steps", "6")) == exits.DONE
    assert_same_weights(run / "model-6", tmp_path / "ckpt" / "ref" / "model-6")


def test_checkpoints_and_events_may_share_one_folder(tmp_path, data_dir):
    args = run_args(tmp_path, data_dir, "one", "--max-steps", "2", "--logdir", str(tmp_path / "ckpt"))
    assert fx.run_main(args) == exits.DONE
    assert fx.run_main(args[:-4] + ["--max-steps", "3", "-rl", "--logdir", str(tmp_path / "ckpt")]) == exits.DONE
    assert fx.event_files(tmp_path / "ckpt" / "one" / "train")


def copy_save(folder, step, into):
    """Copy the files of save ``step`` of ``folder`` into the folder ``into``."""
    for path in folder.glob("model-%d.*" % step):
        shutil.copy(path, into / path.name)


def test_a_start_puts_right_what_killed_saves_left(tmp_path, data_dir, capsys):
    assert fx.run_main(run_args(tmp_path, data_dir, "ref", "--max-steps", "12")) == exits.DONE
    args = run_args(tmp_path, data_dir, "kill")
    run = tmp_path / "ckpt" / "kill"
    aside = tmp_path / "aside"
    aside.mkdir()
    assert fx.run_main(args + ["--max-steps", "6"]) == exits.DONE
    copy_save(run, 4, aside)
    shutil.copy(run / "checkpoint", aside / "checkpoint-at-6")
    assert fx.run_main(args + ["--max-steps", "8", "-rl"]) == exits.DONE
    # Killed between the state-file update and the deletion of model-4; and while writing tensors, the
    # state file, settings.json, and a best save.
    copy_save(aside, 4, run)
    temporaries = ["model-10.data-00000-of-00001.tempstate1234567", "model-10.index.tempstate89",
                   "checkpoint.tmp0123456789abcdef", "settings.json.tmp4242", "best/model-9.index.tempstate5"]
    for name in temporaries:
        (run / name).write_bytes(b"partial")
    (run / "notes.txt").write_text("the user's own file")
    capsys.readouterr()
    assert fx.run_main(args + ["--max-steps", "10", "-rl"]) == exits.DONE
    err = capsys.readouterr().err
    assert "an interrupted save left files in %s: removed " % run in err
    for name in temporaries + ["model-4.index"]:
        assert name in err
        assert not (run / name).exists()
    assert (run / "notes.txt").exists()
    assert_same_weights(run / "model-10", tmp_path / "ckpt" / "ref" / "model-10")
    # Killed between writing model-12's files and listing it: the state file still lists 8 and 10.
    shutil.copy(run / "checkpoint", aside / "checkpoint-at-10")
    assert fx.run_main(args + ["--max-steps", "12", "-rl"]) == exits.DONE
    shutil.copy(aside / "checkpoint-at-10", run / "checkpoint")
    copy_save(aside, 4, run)   # and an older leftover, listed nowhere
    capsys.readouterr()
    assert fx.run_main(args + ["--max-steps", "12", "-rl"]) == exits.DONE
    err = capsys.readouterr().err
    assert "removed model-4.data-00000-of-00001, model-4.index; listed the complete model-12 in its state file" in err
    assert "resuming kill: step 12 of 12" in err
    assert saved_steps(run) == [10, 12]
    assert fx.checkpoint_values(str(run))["global_step"] == 12
    # An unlisted newer save that does not read back is a wreck: removed, not adopted, and nothing listed
    # goes for it.
    copy_save(run, 12, aside)
    for path in aside.glob("model-12.*"):
        shutil.copy(path, run / path.name.replace("model-12", "model-14"))
    data = next(run.glob("model-14.data-*"))
    data.write_bytes(data.read_bytes()[:-100])
    capsys.readouterr()
    assert fx.run_main(args + ["--max-steps", "12", "-rl"]) == exits.DONE
    assert "removed model-14.data-00000-of-00001, model-14.index" in capsys.readouterr().err
    assert saved_steps(run) == [10, 12]
    # No state file (deleted, or unreadable): nothing is known superseded, every complete save stays.
    copy_save(aside, 4, run)
    (run / "checkpoint").write_text("model_checkpoint_path: \"model-12")  # cut short
    assert fx.run_main(args + ["--max-steps", "12", "-rl"]) == exits.DONE
    assert "an interrupted save" not in capsys.readouterr().err
    assert saved_steps(run) == [4, 10, 12]


def test_a_second_process_on_a_run_folder_is_refused_until_the_first_dies(tmp_path, data_dir, train_process):
    args = run_args(tmp_path, data_dir, "busy", "--set", "checkpoint_every=0.1", "--max-steps", "100000")
    first = train_process(args)
    wait_for_line(first, "step 2/")
    for extra in ([], ["-rl"]):
        second = train_process(args + extra)
        _, err = second.communicate(timeout=LIMIT)
        assert second.returncode == exits.FAILED
        assert "is in use by process %d on " % first.pid in last_line(err)
    first.kill()  # SIGKILL: the OS releases the lock
    first.wait()
    third = train_process(run_args(tmp_path, data_dir, "busy", "--max-steps", "3", "-rl"))
    _, err = third.communicate(timeout=LIMIT)
    assert third.returncode == exits.DONE, err
    assert "resuming busy" in err


def test_records_damaged_during_a_run_cost_no_training(tmp_path, train_process):
    # Verified at the start; damaged afterwards, the test split fails the first evaluation, and the step
    # reached is saved although no periodic save was due.
    data = tmp_path / "data"
    record_dir = fx.write_tiny_records(data)
    child = train_process(run_args(tmp_path, data, "rot", "--set", "eval_every=12", "--set", "checkpoint_every=100",
                                   "--max-steps", "1000"))
    wait_for_line(child, "step 1/")
    path = os.path.join(record_dir, "test.tfrecord")
    content = bytearray(open(path, "rb").read())
    content[len(content) // 2:len(content) // 2 + 64] = bytes(64)
    with open(path, "wb") as f:
        f.write(bytes(content))
    _, err = child.communicate(timeout=LIMIT)
    assert child.returncode == exits.FAILED
    line = last_line(err)
    assert line.startswith("error: the fashion-mnist records under %s are damaged (" % data)
    assert "at step 72; saved %s" % (tmp_path / "ckpt" / "rot" / "model-72") in line  # 12 epochs of 6 steps
    assert saved_steps(tmp_path / "ckpt" / "rot") == [72]
    assert os.path.exists(record_dir)  # the user deletes the records, not the run


@contextlib.contextmanager
def tmpfs(path, size):
    """A real tmpfs of ``size`` mounted at ``path`` (skips the test where mounting is not allowed)."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (a real full disk) needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip("cannot mount a tmpfs here: %s" % mounted.stderr.strip())
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_checkpoint_disk_ends_in_one_line_and_resumes_once_freed(tmp_path, data_dir, capsys):
    with tmpfs(tmp_path / "small", "800k") as disk:
        args = run_args(tmp_path, data_dir, "full", "-opt", "sgd", "-m", "lenet", "--checkpoint-dir", str(disk),
                        "--set", "checkpoint_every=0.34", "--set", "eval_every=100")
        # LeNet's variables take 0.53 MB: model-2 fits, model-4 does not.
        assert fx.run_main(args + ["--max-steps", "20"]) == exits.FAILED
        line = last_line(capsys.readouterr().err)
        assert line.startswith("error: cannot write checkpoint to %s (No space left on device) at step 4; "
                               "the last checkpoint is %s." % (disk / "full" / "model-4", disk / "full" / "model-2"))
        assert not [p for p in (disk / "full").rglob("*") if "tempstate" in p.name]
        filler = disk / "filler"
        with open(filler, "wb") as f:  # fill what is left: -rl before freeing space
            try:
                f.write(b"x" * (1 << 20))
            except OSError:
                pass
        assert fx.run_main(args + ["--max-steps", "6", "-rl"]) == exits.FAILED
        assert "No space left on device" in last_line(capsys.readouterr().err)
        filler.unlink()
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        assert fx.run_main(args + ["--max-steps", "6", "-rl"]) == exits.DONE
        assert "resuming full: step 2 of 6" in capsys.readouterr().err


def test_a_full_log_disk_saves_the_step_reached_and_says_so(tmp_path, data_dir, capsys):
    with tmpfs(tmp_path / "small", "220k") as disk:  # the graph takes 167k
        args = run_args(tmp_path, data_dir, "logs", "-opt", "sgd", "-m", "lenet", "--logdir", str(disk),
                        "--set", "checkpoint_every=100", "--set", "eval_every=100", "--max-steps", "100000")
        assert fx.run_main(args) == exits.FAILED
        line = last_line(capsys.readouterr().err)
        assert line.startswith("error: cannot write events to %s" % (disk / "logs")) and "No space left" in line
        step = int(line.split(" at step ")[1].split(";")[0])
        assert "; saved %s." % (tmp_path / "ckpt" / "logs" / ("model-%d" % step)) in line
        assert fx.checkpoint_values(str(tmp_path / "ckpt" / "logs"))["global_step"] == step

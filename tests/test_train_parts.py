"""Pieces of the trainer on their own: BN re-estimation, checkpoints, evaluation, progress, stop signals."""
import errno
import io
import os
import re
import signal
import sys
import threading
import time
import types

import numpy as np
import pytest

import train_fixtures as fx
from config import config_train
from tfcompat import tf
from training import atomic_file, checkpoints, console, evaluation, exits, graph, loop, progress, settings, stop
from training.bn import BatchNormReestimator
from training.dataset import record_info
from training.events import Events


def _toy_bn(images, decay, moving_mean, moving_sq):
    """A batch-norm-like layer: moving-average updates of the batch mean and mean square."""
    batch_mean = tf.reduce_mean(images, axis=[0, 1, 2])
    batch_sq = tf.reduce_mean(tf.square(images), axis=[0, 1, 2])
    for moving, batch in ((moving_mean, batch_mean), (moving_sq, batch_sq)):
        tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, tf.assign_sub(moving, (1.0 - decay) * (moving - batch)))
    return batch_mean


@pytest.mark.parametrize("decay", [0.9, 0.7])
def test_bn_reestimation_sets_the_mean_of_the_batch_statistics(decay):
    rng = np.random.RandomState(0)
    batches = rng.uniform(-1, 3, size=(7, 4, 3, 3, 2)).astype(np.float32)
    n = 5
    with tf.Graph().as_default():
        images = tf.data.make_one_shot_iterator(tf.data.Dataset.from_tensor_slices(batches)).get_next()
        with tf.variable_scope("model"):
            mean = tf.get_variable("moving_mean", [2], initializer=tf.constant_initializer(9.0), trainable=False)
            sq = tf.get_variable("moving_sq", [2], initializer=tf.constant_initializer(-4.0), trainable=False)
        bn = BatchNormReestimator(images, lambda x: _toy_bn(x, decay, mean, sq), [mean, sq], decay)
        assert not tf.get_collection(tf.GraphKeys.UPDATE_OPS)  # its updates are its own
        with tf.Session() as sess:
            sess.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
            bn.run(sess, n)
            got_mean, got_sq = sess.run([mean, sq])
    np.testing.assert_allclose(got_mean, batches[:n].mean(axis=(1, 2, 3)).mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_sq, np.square(batches[:n]).mean(axis=(1, 2, 3)).mean(axis=0), rtol=1e-4)


@pytest.mark.parametrize("optimizer", [["-opt", "entropy-sgd", "-L", "1"], ["-opt", "sgd"], ["-opt", "adam"]])
def test_bn_reestimation_in_the_real_graph_runs_without_dropout(tmp_path, optimizer):
    # LeNet has dropout 0.5 between its batch-norm layers: with dropout on, two passes over the same
    # batches would give different statistics in every layer after the first. Every optimizer is
    # evaluated the same way.
    record_dir = fx.write_tiny_records(tmp_path)
    s = settings.parse_settings(fx.TINY + optimizer, config_train)
    with tf.Graph().as_default():
        g = graph.build(s, record_info(record_dir), record_dir)
        with tf.Session() as sess:
            sess.run(g.init)
            initial = sess.run(g.bn.moving_vars)
            passes = []
            for _ in range(2):
                sess.run(g.bn.init, {g.bn.start_batch: 3})
                g.bn.run(sess, 2)
                passes.append(sess.run(g.bn.moving_vars))
    assert len(passes[0]) == 6     # mean and variance of LeNet's three batch-norm layers
    for before, first, second in zip(initial, *passes):
        assert not np.allclose(before, first)
        np.testing.assert_array_equal(first, second)


def test_bn_reestimation_can_be_turned_off(tmp_path):
    record_dir = fx.write_tiny_records(tmp_path)
    s = settings.parse_settings(fx.TINY + ["-opt", "sgd", "--set", "bn_reestimate=false"], config_train)
    with tf.Graph().as_default():
        assert graph.build(s, record_info(record_dir), record_dir).bn is None


def _weights():
    return tf.get_variable("w", [3], initializer=tf.zeros_initializer())


def test_checkpoints_keep_the_last_few_best_apart_and_survive_restarts(tmp_path):
    run_dir = str(tmp_path / "run")
    with tf.Graph().as_default():
        w = _weights()
        ckpt = checkpoints.Checkpoints(run_dir, [w], keep=2)
        with tf.Session() as sess:
            for step in (1, 2, 3):
                sess.run(w.assign([float(step)] * 3))
                ckpt.save(sess, step)
            assert ckpt.save(sess, 3) is None           # once per step
            ckpt.save_best(sess, 2)
    names = sorted(os.listdir(run_dir))
    assert "model-1.index" not in names and "model-2.index" in names and "model-3.index" in names
    assert checkpoints.resolve(run_dir).endswith("model-3")
    assert checkpoints.resolve(os.path.join(run_dir, "best")).endswith("best/model-2")
    assert checkpoints.resolve(os.path.join(run_dir, "model-2")).endswith("model-2")
    assert checkpoints.resolve(os.path.join(run_dir, "model-1")) is None
    assert checkpoints.resolve(str(tmp_path / "nothing")) is None
    # A new process adopting the saved list keeps deleting the oldest.
    with tf.Graph().as_default():
        w = _weights()
        ckpt = checkpoints.Checkpoints(run_dir, [w], keep=2)
        with tf.Session() as sess:
            ckpt.restore(sess, ckpt.latest())
            np.testing.assert_array_equal(sess.run(w), [3.0] * 3)
            ckpt.adopt_existing()
            ckpt.save(sess, 4)
            ckpt.save_best(sess, 4)
    names = os.listdir(run_dir)
    assert "model-2.index" not in names and {"model-3.index", "model-4.index"} <= set(names)
    # ... and a new best replaces the one an earlier process saved.
    assert sorted(n for n in os.listdir(os.path.join(run_dir, "best")) if n.endswith(".index")) == ["model-4.index"]


def test_best_checkpoint_value_is_read_back(tmp_path):
    with tf.Graph().as_default():
        w = _weights()
        ckpt = checkpoints.Checkpoints(str(tmp_path), [w], keep=1)
        with tf.Session() as sess:
            assert ckpt.stored_best("w") is None
            sess.run(w.assign([0.25, 0.5, 0.75]))
            ckpt.save_best(sess, 7)
    np.testing.assert_array_equal(ckpt.stored_best("w"), [0.25, 0.5, 0.75])


def test_two_writers_in_one_second_keep_separate_event_files(tmp_path):
    for step in (1, 2):
        events = Events(str(tmp_path))
        events.train_scalars({"loss": float(step)}, step)
        events.test_scalars({"accuracy": 0.5}, step)
        events.close()
    assert len(fx.event_files(tmp_path / "train")) == 2 and len(fx.event_files(tmp_path / "test")) == 2
    assert fx.scalar_events(str(tmp_path / "train"))["loss"] == [(1, 1.0), (2, 2.0)]


def test_restore_subset_checks_names_and_shapes(tmp_path):
    prefix = str(tmp_path / "model-1")
    with tf.Graph().as_default():
        w = tf.get_variable("w", [3], initializer=tf.constant_initializer(2.0))
        with tf.Session() as sess:
            sess.run(w.initializer)
            tf.train.Saver([w]).save(sess, prefix)
    with tf.Graph().as_default():
        w = tf.get_variable("w", [3], initializer=tf.zeros_initializer())
        other = tf.get_variable("other", [1])
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            assert checkpoints.restore_subset(sess, prefix, [w]) == 1
            np.testing.assert_array_equal(sess.run(w), [2.0] * 3)
            with pytest.raises(ValueError, match="lacks"):
                checkpoints.restore_subset(sess, prefix, [w, other])
    with tf.Graph().as_default():
        w = tf.get_variable("w", [4])
        with tf.Session() as sess:
            with pytest.raises(ValueError, match="shape"):
                checkpoints.restore_subset(sess, prefix, [w])


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_write_json_gives_the_file_the_umasks_mode(tmp_path, umask, mode):
    # settings.json goes beside the checkpoints, which TF writes with the umask's mode: the same for it.
    before = os.umask(umask)
    try:
        checkpoints.write_json(str(tmp_path / checkpoints.SETTINGS), {"L": 5})
    finally:
        os.umask(before)
    assert os.stat(tmp_path / checkpoints.SETTINGS).st_mode & 0o777 == mode


def test_write_json_replaces_atomically_and_reads_from_best(tmp_path):
    run_dir = tmp_path / "run"
    checkpoints.write_json(str(run_dir / checkpoints.SETTINGS), {"L": 5})
    checkpoints.write_json(str(run_dir / checkpoints.SETTINGS), {"L": 6})
    assert os.listdir(run_dir) == [checkpoints.SETTINGS]   # no temporary left behind
    assert checkpoints.read_settings(str(run_dir)) == {"L": 6}
    assert checkpoints.read_settings(str(run_dir / "best")) == {"L": 6}
    assert checkpoints.read_settings(str(tmp_path)) is None


def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "timings.json"
    path.write_text("old")

    def half_then_full_disk(f):
        f.write(b"ne")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError):
        atomic_file.write_atomically(str(path), half_then_full_disk)
    assert os.listdir(tmp_path) == ["timings.json"] and path.read_text() == "old"


def test_evaluate_covers_every_example_once():
    rng = np.random.RandomState(1)
    logits_np = rng.randn(23, 4).astype(np.float32)
    labels_np = rng.randint(0, 4, 23).astype(np.int32)
    with tf.Graph().as_default():
        it = tf.data.make_initializable_iterator(
            tf.data.Dataset.from_tensor_slices((logits_np, labels_np)).batch(5))   # last batch: 3
        logits, labels = it.get_next()
        xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), labels), tf.float32)
        test = type("T", (), dict(init=it.initializer, loss_sum=tf.reduce_sum(xent),
                                  correct=tf.reduce_sum(correct), count=tf.size(labels)))
        with tf.Session() as sess:
            first = evaluation.evaluate(sess, test)
            second = evaluation.evaluate(sess, test)
    shifted = logits_np - logits_np.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected_loss = -log_probs[np.arange(23), labels_np].mean()
    expected_acc = (logits_np.argmax(axis=1) == labels_np).mean()
    assert first == pytest.approx((expected_loss, expected_acc), rel=1e-5)
    assert second == first
    assert evaluation.is_finite(1.0, 2) and not evaluation.is_finite(1.0, float("nan"))
    assert not evaluation.is_finite(float("inf"))


def _line_progress(total_steps, steps_per_epoch, images_per_step, log_every=1000):
    """A Progress writing plain lines to a StringIO; returns (progress, the StringIO)."""
    out = io.StringIO()
    return progress.Progress(total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                             images_per_step=images_per_step, log_every=log_every, bar=False, stream=out), out


def test_progress_lines_and_time_left():
    p, out = _line_progress(total_steps=10, steps_per_epoch=4.0, images_per_step=100, log_every=5)
    for step in range(1, 11):
        # The first two steps set up the graph: slow, and left out of the mean that "left" uses.
        p.step_done(step, step / 4.0, 30.0 if step <= progress.SETUP_STEPS else 0.5, {"loss": 1.25, "accuracy": 0.5})
    p.evaluation(10, 2.5, 0.75, 0.8125, 0.8125)
    lines = out.getvalue().splitlines()
    assert lines[0] == "step 5/10  epoch 1.25  loss 1.2500  acc 0.500  200 img/s  left 0:00:03"
    assert lines[1].startswith("timing: ")
    assert lines[2].startswith("step 10/10") and lines[2].endswith("left 0:00:00")
    assert lines[3] == "eval step 10  epoch 2.50  test loss 0.7500  acc 0.8125  error 18.75%  (best 0.8125)"
    assert progress.format_seconds(3725.4) == "1:02:05"


def test_progress_estimates_the_run_once_from_the_steps_after_the_set_up():
    p, out = _line_progress(total_steps=100, steps_per_epoch=10.0, images_per_step=100)
    for step in range(1, 21):
        p.step_done(step, step / 10.0, 10.0 if step <= progress.SETUP_STEPS else 0.5, {"loss": 1.0, "accuracy": 0.5})
    assert out.getvalue().splitlines() == [
        "timing: 200 img/s, 0:00:05 per effective epoch: about 0:00:50 for all 10 effective epochs, plus "
        "evaluations; the first 2 steps (graph set-up) took 0:00:20"]
    assert len(out.getvalue().splitlines()) == 1 and progress.ESTIMATE_STEPS + progress.SETUP_STEPS < 20


def test_progress_estimate_of_a_month_long_cpu_run_comes_after_one_slow_step():
    # WRN-28-10, Entropy-SGD at L = 20 on CIFAR-10 at 3.6 img/s: one outer step (2560 images) is enough.
    per_epoch = 50000 / (128 * 20.0)
    p, out = _line_progress(total_steps=3907, steps_per_epoch=per_epoch, images_per_step=128 * 20)
    for step in range(1, progress.SETUP_STEPS + 2):
        p.step_done(step, step / per_epoch, 2560 / 3.6, {"loss": 2.0, "accuracy": 0.1})
    lines = out.getvalue().splitlines()
    assert [line for line in lines if line.startswith("timing: ")] == [
        "timing: 3.6 img/s, 3:51:29 per effective epoch: about 32.2 days for all 200.04 effective epochs, plus "
        "evaluations; the first 2 steps (graph set-up) took 0:23:42"]
    # Each step takes longer than LINE_SECONDS, so each gets its line although log_every is far away.
    assert [line.split()[1] for line in lines if line.startswith("step ")] == ["1/3907", "2/3907", "3/3907"]
    assert progress.format_duration(86400 * 2 - 1) == "1 day, 23:59:59" and progress.format_rate(3.64) == "3.6"


def test_progress_estimate_of_a_resumed_run_says_what_is_left():
    p, out = _line_progress(total_steps=100, steps_per_epoch=10.0, images_per_step=100)
    for step in range(61, 61 + progress.SETUP_STEPS + progress.ESTIMATE_STEPS):
        p.step_done(step, step / 10.0, 1.0, {"loss": 1.0, "accuracy": 0.5})
    assert "about 0:01:40 for all 10 effective epochs (0:00:33 left), plus evaluations" in out.getvalue()


def test_progress_says_what_the_long_silent_phases_do_in_lines():
    p, out = _line_progress(total_steps=4, steps_per_epoch=2.0, images_per_step=10)
    for step in range(1, 3):
        with p.running_step():
            pass
        p.step_done(step, step / 2.0, 0.1, {"loss": 1.0, "accuracy": 0.5})
    with p.evaluating(2, bn_batches=50):
        pass
    with p.evaluating(4):
        pass
    assert out.getvalue().splitlines() == [
        progress.FIRST_STEP,   # once: only the first step of the process optimises the graph
        "evaluating at step 2: batch-norm statistics (50 batches), then the test split",
        "evaluating at step 4: the test split"]


def test_progress_spinner_on_a_terminal_goes_when_the_phase_ends():
    out = io.StringIO()
    p = progress.Progress(total_steps=4, steps_per_epoch=2.0, images_per_step=10, log_every=1, bar=True, stream=out)
    with p.evaluating(2, bn_batches=3):
        assert "evaluating at step 2: batch-norm statistics (3 batches)" in out.getvalue()
    assert "0:00:00  evaluating at step 2" in out.getvalue()
    assert not [t for t in threading.enumerate() if t.name == "progress-spinner"]
    assert out.getvalue().endswith("\r")          # the line is cleared, nothing left after it


def _last_drawn(text):
    """What a terminal shows last on the line of a bar drawn into ``text`` (carriage returns redraw)."""
    return text.rstrip("\n").split("\r")[-1]


def test_plain_lines_come_at_least_every_line_seconds_of_steps():
    # Steps of a third of LINE_SECONDS with log_every far away: a line after every third step, not none.
    p, out = _line_progress(total_steps=100, steps_per_epoch=50.0, images_per_step=10, log_every=1000)
    for step in range(1, 8):
        p.step_done(step, step / 50.0, progress.LINE_SECONDS / 3, {"loss": 1.0, "accuracy": 0.5})
    steps = [line.split()[1] for line in out.getvalue().splitlines() if line.startswith("step ")]
    assert steps == ["3/100", "6/100"]


def test_progress_bar_mode_draws_a_bar_per_epoch():
    out = io.StringIO()
    p = progress.Progress(total_steps=6, steps_per_epoch=3.0, images_per_step=10, log_every=100,
                          bar=True, stream=out)
    for step in range(1, 7):
        p.step_done(step, step / 3.0, 0.1, {"loss": 1.0, "accuracy": 0.5})
        # The bar shows the step just done, never the one before (no 0.1 s wait before a redraw).
        shown = _last_drawn(out.getvalue())
        assert "step %d " % step in shown and "%d/3" % ((step - 1) % 3 + 1) in shown
    p.evaluation(6, 2.0, 0.5, 0.75, 0.75)
    p.close()
    text = out.getvalue()
    assert "epoch 1" in text and "epoch 2" in text and "3/3" in text
    # The last bar was full, so it closed before the final evaluation: nothing is drawn after that line.
    assert text.endswith("eval step 6  epoch 2.00  test loss 0.5000  acc 0.7500  error 25.00%  (best 0.7500)\n")


def test_a_tiny_run_prints_the_time_estimate_and_its_phases(tmp_path, data_dir, capsys):
    steps = progress.SETUP_STEPS + progress.ESTIMATE_STEPS + 1
    assert fx.run_main(fx.train_args(tmp_path, data_dir, "-opt", "sgd", "--max-steps", str(steps), "-n", "t")) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[1] == progress.FIRST_STEP
    timing = [line for line in lines if line.startswith("timing: ")]
    assert len(timing) == 1 and re.fullmatch(
        r"timing: [\d.]+ img/s, \d+:\d\d:\d\d per effective epoch: about \d+:\d\d:\d\d for all 1\.33 "
        r"effective epochs, plus evaluations; the first 2 steps \(graph set-up\) took \d+:\d\d:\d\d", timing[0])
    assert "evaluating at step 2: batch-norm statistics (2 batches), then the test split" in lines  # SGD too


def test_stop_request_turns_signals_into_a_flag_and_restores_handlers():
    before = signal.getsignal(signal.SIGTERM)
    seen = []
    with stop.StopRequest(seen.append) as request:
        assert not request.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert request.requested and request.signal == signal.SIGTERM and seen == [signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)    # a second signal aborts
    assert signal.getsignal(signal.SIGTERM) is before
    with stop.StopRequest() as request:
        os.kill(os.getpid(), signal.SIGHUP)  # the terminal gone: a stop, not the end of the process
        assert request.signal == signal.SIGHUP
        with pytest.raises(stop.Terminated) as second:  # a second aborts with its own status
            os.kill(os.getpid(), signal.SIGTERM)
        assert second.value.signum == signal.SIGTERM
    assert exits.EXIT_STATUS[signal.SIGTERM] == exits.TERMINATED == 143
    assert exits.EXIT_STATUS[signal.SIGINT] == exits.INTERRUPTED == 130
    assert exits.EXIT_STATUS[signal.SIGHUP] == exits.HUNG_UP == 129


def test_a_stop_signal_is_heard_while_a_step_runs_aside_and_a_second_leaves_it():
    # The step (here a sleep) runs on its own thread: the handler runs at once, not when the step ends.
    heard = []
    with stop.StopRequest(lambda signum: heard.append(time.time())) as request:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        start = time.time()
        assert stop.run_aside(lambda seconds: time.sleep(seconds) or "done", 1.5) == "done"
        assert request.signal == signal.SIGTERM and heard[0] - start < 1.0  # heard during the step
        with pytest.raises(ValueError, match="from the step"):  # the step's own exception reaches the caller
            stop.run_aside(int, "from the step")
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()  # again: abort
        start = time.time()
        with pytest.raises(stop.Terminated):
            stop.run_aside(time.sleep, 3.0)
        assert time.time() - start < 1.5  # left the wait, not the step's end


def test_quiet_exit_takes_a_stream_python_never_opened(monkeypatch):
    # started with stdout closed (`evaluate.py ... >&-`): sys.stdout is None, and nothing is to flush
    monkeypatch.setattr(sys, "stdout", None)
    console.quiet_exit()


def test_say_takes_a_stderr_python_never_opened(monkeypatch):
    # `python -m data ... 2>&-`: the waiting and converting lines are dropped, the preparation goes on
    monkeypatch.setattr(sys, "stderr", None)
    console.say("data: converting")


def test_a_signal_ignored_from_the_start_stays_ignored(capsys):
    # nohup ignores SIGHUP so that a run outlives its terminal: neither handler may take it back.
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop.StopRequest() as request:
            os.kill(os.getpid(), signal.SIGHUP)
            assert not request.requested
        assert stop.run_stoppable(lambda: os.kill(os.getpid(), signal.SIGHUP) or 0, "unused") == 0
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert capsys.readouterr().err == ""
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_run_stoppable_ends_a_stopped_program_with_one_line_and_its_status(signum, capsys):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    cleaned = []

    def body():
        try:
            os.kill(os.getpid(), signum)
            return 0
        finally:
            cleaned.append(signum)
    assert stop.run_stoppable(body, "prog: interrupted") == 128 + signum
    assert cleaned == [signum]  # the program's own cleanup ran first
    assert capsys.readouterr().err == "prog: interrupted\n"
    assert {s: signal.getsignal(s) for s in before} == before
    assert stop.run_stoppable(lambda: 7, "unused") == 7
    assert capsys.readouterr().err == ""


def test_safe_stream_drops_what_it_cannot_write_and_never_raises():
    class Flaky(io.StringIO):
        """Raises what a dead or interrupted stream raises, once per entry of ``failures``."""
        def __init__(self, failures):
            super().__init__()
            self.failures = list(failures)

        def write(self, text):
            if self.failures:
                raise self.failures.pop(0)
            return super().write(text)

    interrupted = Flaky([RuntimeError("reentrant call")])  # a signal handler's write inside another
    out = console.SafeStream(interrupted)
    out.write("lost\n")
    out.write("kept\n")
    assert interrupted.getvalue() == "kept\n" and not out.broken
    dead = Flaky([BrokenPipeError(32, "Broken pipe")])
    out = console.SafeStream(dead)
    out.write("lost\n")
    out.write("also lost\n")
    out.flush()
    assert dead.getvalue() == "" and out.broken and not out.isatty()


class _WorkerSession(object):
    """Stands in for a cluster worker's session: every step moves the chief's global step on by one, and
    a stop signal arrives during step ``stop_at``."""

    def __init__(self, request, stop_at):
        self.step, self.request, self.stop_at = 0, request, stop_at

    def run(self, fetches, feed_dict=None):
        if not isinstance(fetches, dict):  # the global step, the stream's initialiser
            return self.step
        self.step += 1
        if self.step == self.stop_at:
            self.request.signal = signal.SIGTERM
        return {"values": {"loss": 1.0, "accuracy": 0.5}, "extras": {"step": self.step}}


@pytest.mark.parametrize("stop_at, status", [(1, exits.TERMINATED), (2, exits.DONE)])
def test_a_worker_stopped_during_the_last_step_ends_as_done(stop_at, status):
    request = stop.StopRequest()  # not entered: the session stands in for the signal
    g = types.SimpleNamespace(global_step="step", train_init="init", start_batch="start", per_step=1,
                              train_op="train", fetches={})
    quiet = progress.Progress(total_steps=2, steps_per_epoch=1.0, images_per_step=1, log_every=100, bar=False,
                              stream=io.StringIO())
    steps = loop.StepPlan(total=2, eval_every=1, checkpoint_every=1, per_epoch=1.0, batch=1, per_step=1,
                          train_size=1)
    s = types.SimpleNamespace(ps_idle_timeout=60.0)
    assert loop.run_worker(_WorkerSession(request, stop_at), g, s, steps, quiet, request, lambda: None) == status

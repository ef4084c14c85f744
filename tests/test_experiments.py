"""experiments/: the runner's stage process (one stop signal passed on, output kept), its timings and
checkpoint reading, and the MNIST protocol's plan and step counts against the authors' arithmetic."""
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import evaluate
from analysis.events import Run, Series
from event_fixtures import write_run
from experiments import claims, mnist_protocol, runner
from training import exits, lock

# A stage that reports each SIGTERM it gets, and exits 143 a second after the first, as train.py does
# once it has saved.
CHILD = """
import signal, sys, time
got = []
signal.signal(signal.SIGTERM, lambda *_: got.append(1) or print("got", len(got), flush=True))
print("ready", flush=True)
while not got:
    time.sleep(0.05)
time.sleep(1.0)
print("signals", len(got), flush=True)
sys.exit(143)
"""


def test_a_stage_gets_one_stop_signal_and_its_status_is_returned(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    me, before = os.getpid(), signal.getsignal(signal.SIGTERM)
    timers = [threading.Timer(delay, os.kill, (me, signal.SIGTERM)) for delay in (1.5, 1.8)]
    for t in timers:
        t.start()
    with open(tmp_path / "out.log", "w") as out:
        status, stopped = runner._run([str(script)], out, "child")
    for t in timers:
        t.join()
    assert status == 143 and stopped == signal.SIGTERM
    log = (tmp_path / "out.log").read_text().split()
    assert log == ["ready", "got", "1", "signals", "1"]
    assert signal.getsignal(signal.SIGTERM) is before  # the handler in place before the stage is back


# A stage that writes "ready PID" to the file it is given, then "terminated" when SIGTERM comes.
WAITING_STAGE = """
import os, signal, sys, time
def terminated(*_):
    open(sys.argv[1], "w").write("terminated")
    sys.exit(143)
signal.signal(signal.SIGTERM, terminated)
open(sys.argv[1], "w").write("ready %d" % os.getpid())
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's parent-death signal is Linux's")
def test_a_stage_gets_sigterm_when_the_script_is_killed_outright(tmp_path):
    stage, mark = tmp_path / "stage.py", tmp_path / "mark"
    stage.write_text(WAITING_STAGE)
    script = subprocess.Popen([sys.executable, "-c", "import os; from experiments import runner; "
                               "runner._run([%r, %r], open(os.devnull, 'w'), 'stage')" % (str(stage), str(mark))])
    try:
        for _ in range(1200):  # the script imports TensorFlow (through evaluate.py) first
            if mark.exists() and mark.read_text().startswith("ready"):
                break
            time.sleep(0.05)
        script.kill()  # SIGKILL: no handler of the script's runs
        script.wait()
        for _ in range(600):
            if mark.read_text() == "terminated":
                break
            time.sleep(0.05)
        assert mark.read_text() == "terminated"
    finally:
        script.kill()
        if mark.exists() and mark.read_text().startswith("ready"):
            os.kill(int(mark.read_text().split()[1]), signal.SIGKILL)


# A stage that asks for a hang-up of its parent (the study's terminal gone), then prints lines the console
# echoes, records every signal it got in the file it is given, and exits with 128 + the first, as train.py.
HANG_UP_STAGE = """
import os, signal, sys, time
got = []
for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda n, _: got.append(n))
os.kill(os.getppid(), signal.SIGHUP)
while not got:
    time.sleep(0.05)
for i in range(3):
    print("eval %d" % i, flush=True)
    time.sleep(0.2)
open(sys.argv[1], "w").write(" ".join(map(str, got)))
sys.exit(128 + got[0])
"""


class DeadConsole(object):
    """A terminal that went away: every write fails as a hung-up tty's does."""

    def write(self, text):
        raise OSError(errno.EIO, "Input/output error")

    def flush(self):
        pass


def test_a_hang_up_is_passed_on_and_a_dead_console_sends_no_second_signal(tmp_path, monkeypatch):
    # The stage's first echoed line fails on the dead console. The stage is waited for, and not sent the
    # SIGTERM that would abort the save the hang-up started.
    stage, got = tmp_path / "stage.py", tmp_path / "got"
    stage.write_text(HANG_UP_STAGE)
    before = signal.getsignal(signal.SIGHUP)
    monkeypatch.setattr(sys, "stdout", DeadConsole())
    with open(tmp_path / "out.log", "w") as out, pytest.raises(OSError):
        runner._run([str(stage), str(got)], out, "stage")
    assert got.read_text() == str(int(signal.SIGHUP))
    assert signal.getsignal(signal.SIGHUP) is before


def test_run_script_ends_in_one_line_whatever_stops_the_study(tmp_path, monkeypatch, capsys):
    damaged = tmp_path / "timings.json"
    damaged.write_text('{"lenet-sgd-seed1": [12.5, ')  # a file cut short
    assert runner.run_script(lambda: runner.Timings(str(damaged))) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: %s is damaged (" % damaged) and err.endswith(
        "): mend it, or remove it to start its record afresh\n") and err.count("\n") == 1
    # a stop between stages (no stage to pass it on to)
    assert runner.run_script(lambda: os.kill(os.getpid(), signal.SIGTERM)) == exits.TERMINATED
    assert capsys.readouterr().err == "stopped: run the same command again to go on\n"
    # a console gone (a hang-up, a closed pipe) costs the study its lines only
    monkeypatch.setattr(sys, "stdout", DeadConsole())
    assert runner.run_script(lambda: print("a report line") or 0) == 0
    assert isinstance(sys.stdout, DeadConsole)  # put back as it was


def test_a_study_stopped_with_its_output_pipe_gone_exits_with_the_stop_status(tmp_path):
    # `python -m experiments.mnist_protocol | tee log`, then Ctrl-C: tee is gone, and the printed lines
    # still in the buffer cannot be flushed. The status must stay the stop's, not the interpreter's 120.
    script = ("import os, signal, sys; from experiments import runner; "
              "sys.exit(runner.run_script(lambda: print('a line') or os.kill(os.getpid(), signal.SIGHUP)))")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(os.environ, PYTHONUNBUFFERED=""))
    child.stdout.close()  # the pipe's reader gone before the script writes
    _, err = child.communicate(timeout=120)
    assert child.returncode == exits.HUNG_UP
    assert err.decode() == "stopped: run the same command again to go on\n"


def test_timings_sum_over_calls_and_survive_a_restart(tmp_path):
    path = str(tmp_path / "timings.json")
    t = runner.Timings(path)
    t.add("a", 10.0, 5)
    t.add("a", 20.0, 10)
    t.add("b", 3.0, 0)  # a call that trained nothing: no rate from it
    again = runner.Timings(path)
    assert again.seconds("a") == 30.0 and again.seconds("missing") == 0.0
    assert again.rate({"a": 1, "b": 1}) == pytest.approx(2.0)
    assert again.rate({"a": 20}) == pytest.approx(0.1)  # per unit of work: 20 minibatches an outer step
    assert again.rate({"b": 1}) is None


def test_checkpoint_step_reads_the_state_file(tmp_path):
    assert runner.checkpoint_step(str(tmp_path)) == 0
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model-2344"\n'
                                         'all_model_checkpoint_paths: "model-2344"\n')
    assert runner.checkpoint_step(str(tmp_path)) == 2344


def test_cell_is_mean_and_sample_std():
    assert runner.cell([1.0, 2.0, 3.0], 2) == "2.00 ± 1.00"
    assert runner.cell([0.5], 3) == "0.500"
    assert runner.cell([-0.25, -0.75], 2, sign=True) == "-0.50 ± 0.35"


def test_a_figure_read_in_float32_or_float64_shows_one_mean():
    # 10.00 % and 10.01 % test error: mean 10.005, a rounding boundary, on which float32's error decides
    exact = [10.00, 10.01]
    read = [100 * float(np.float32(e / 100)) for e in exact]  # as evaluated, logged in float32, read back
    assert runner.cell(read, 2) == runner.cell(exact, 2)
    one = claims.Claim("c", ("a", read), ("b", exact), 0.0, "", False)
    assert "| a 10.00 ± 0.01 (2) | b 10.00 ± 0.01 (2) | +0.00 ± 0.01 | yes |" in claims.table([one])


@pytest.mark.parametrize("model,recipe,stretch,minibatches", [
    ("lenet", "esgd", 1, 20), ("mnistfc", "sgd", 1, 1), ("lenet", "sgd", 3, 1), ("lenet", "parle-n3", 1, 20)])
def test_protocol_steps_are_the_fewest_that_reach_the_epochs(model, recipe, stretch, minibatches):
    # 100 effective epochs (300 stretched) of 60,000 images in minibatches of 128, L = 20 of them an
    # Entropy-SGD or Parle (per replica) outer step: enough outer steps, and one fewer would not be.
    steps = mnist_protocol.total_steps(mnist_protocol.Config(model, recipe, stretch), 60000)
    needed = 100 * stretch * 60000
    assert steps * minibatches * 128 >= needed > (steps - 1) * minibatches * 128
    # the authors' Entropy-SGD runs 5 outer epochs of floor(60000 / 128) outer steps: 4 fewer
    if recipe == "esgd" and stretch == 1:
        assert steps - 5 * (60000 // 128) == 4


def test_protocol_plan_is_seed_by_seed_with_equal_compute_for_seeds_1_and_2():
    runs = [mnist_protocol.run_name(c, s) for c, s in mnist_protocol.plan([1, 2, 3])]
    assert runs[:9] == ["mnistfc-sgd-seed1", "mnistfc-esgd-seed1", "mnistfc-adam-seed1",
                        "lenet-sgd-seed1", "lenet-esgd-seed1", "lenet-adam-seed1",
                        "lenet-parle-n3-seed1", "lenet-esgd-x3-seed1", "lenet-sgd-x3-seed1"]
    assert len(runs) == len(set(runs)) == 18 + 6
    assert runs[9:18] == [r.replace("seed1", "seed2") for r in runs[:9]]
    assert runs[18:] == [r.replace("seed1", "seed3") for r in runs[:6]]


def test_a_stopped_training_stage_keeps_its_time_and_ends_the_script(tmp_path, monkeypatch, capsys):
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    state = tmp_path / "runs" / "s" / "checkpoints" / "r" / "checkpoint"

    def stopped_after_a_save(argv, out, name, on_line):
        state.parent.mkdir(parents=True)
        state.write_text('model_checkpoint_path: "model-7"\n')
        return 143, signal.SIGTERM

    monkeypatch.setattr(runner, "_run", stopped_after_a_save)
    with pytest.raises(SystemExit) as stop:
        study.train("r", ["-opt", "sgd"], total_steps=10)
    assert stop.value.code == 143  # a scheduler tells a pre-emption from a failure
    assert capsys.readouterr().err == "stopped: run the same command again to go on\n"  # not a failure
    assert study.timings.runs["r"][1] == 7 and study.timings.seconds("r") >= 0
    assert "status 143" in (tmp_path / "results" / "s" / "log.txt").read_text()


def test_the_time_of_each_checkpoint_is_on_disk_as_the_run_goes(tmp_path, monkeypatch):
    # A run resumed at step 2 saves at 5 and 9; the runner is then killed outright (its stage never
    # returns): the timings on disk already hold the 7 steps saved, and the time they took.
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    state = tmp_path / "runs" / "s" / "checkpoints" / "r" / "checkpoint"
    state.parent.mkdir(parents=True)
    state.write_text('model_checkpoint_path: "model-2"\n')
    now = [100.0]
    monkeypatch.setattr(runner.time, "time", lambda: now[0])

    def killed_after_two_saves(argv, out, name, on_line):
        now[0] = 110.0
        on_line()  # a line before any new save: nothing to count
        for step, at in ((5, 130.0), (9, 190.0)):
            now[0] = at
            state.write_text('model_checkpoint_path: "model-%d"\n' % step)
            on_line()
        raise KeyboardInterrupt  # stands for the kill: nothing after this line runs

    monkeypatch.setattr(runner, "_run", killed_after_two_saves)
    with pytest.raises(KeyboardInterrupt):
        study.train("r", ["-opt", "sgd"], total_steps=10)
    on_disk = runner.Timings(study.timings.path)
    assert on_disk.runs["r"] == [90.0, 7]


def test_a_failed_training_run_is_logged_and_tried_again_by_the_next_call(tmp_path, monkeypatch):
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    calls = []
    monkeypatch.setattr(runner, "_run", lambda argv, out, name, on_line: (calls.append(argv), (exits.FAILED, None))[1])
    assert study.train("r", ["-opt", "sgd"], total_steps=10) is False
    assert "r failed (status 1): the study goes on" in (tmp_path / "results" / "s" / "log.txt").read_text()
    assert "r" not in study.timings.runs  # nothing trained, no time counted
    assert study.pending("r", 10) and study.train("r", ["-opt", "sgd"], total_steps=10) is False
    assert len(calls) == 2


def test_the_report_is_written_after_each_run_that_trains_to_its_end(tmp_path, monkeypatch):
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    C = mnist_protocol.Config
    runs = [(C("lenet", "sgd", 1), 1), (C("lenet", "adam", 1), 1), (C("lenet", "sgd", 1), 2)]

    def train(argv, out, name, on_line):  # the Adam run fails; the others save their last step
        if "adam" in name:
            return exits.FAILED, None
        os.makedirs(os.path.join(study.ckpt, name))
        with open(os.path.join(study.ckpt, name, "checkpoint"), "w") as f:
            f.write('model_checkpoint_path: "model-%d"\n' % mnist_protocol.total_steps(C("lenet", "sgd", 1), 60000))
        return exits.DONE, None

    monkeypatch.setattr(runner, "_run", train)
    reports = []
    mnist_protocol.train_all(study, runs, "fashion-mnist", 60000,
                             lambda: reports.append(sorted(os.listdir(study.ckpt))))
    assert reports == [["lenet-sgd-seed1"], ["lenet-sgd-seed1", "lenet-sgd-seed2"]]


def test_a_run_stopped_during_its_last_step_is_reported_before_the_study_ends(tmp_path, monkeypatch, capsys):
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))

    def ended_anyway(argv, out, name, on_line):  # train.py lets a run stopped at its last step end (0)
        os.makedirs(os.path.join(study.ckpt, name))
        with open(os.path.join(study.ckpt, name, "checkpoint"), "w") as f:
            f.write('model_checkpoint_path: "model-10"\n')
        return exits.DONE, signal.SIGINT

    monkeypatch.setattr(runner, "_run", ended_anyway)
    reported = []
    with pytest.raises(SystemExit) as stop:
        study.train("r", ["-opt", "sgd"], total_steps=10, finished=lambda: reported.append(study.done("r", 10)))
    assert reported == [True] and stop.value.code == exits.INTERRUPTED
    assert capsys.readouterr().err.endswith("stopped: run the same command again to go on\n")


def test_a_stage_stopped_by_the_signal_passed_on_is_stopped_not_failed(tmp_path, monkeypatch, capsys):
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    monkeypatch.setattr(runner, "_run", lambda argv, out, name, on_line: (exits.FAILED, signal.SIGTERM))
    with pytest.raises(SystemExit) as stop:
        study.stage("flatness-r", ["evaluate.py"])
    assert stop.value.code == exits.TERMINATED
    assert capsys.readouterr().err == "stopped: run the same command again to go on\n"


def test_a_diverged_run_is_recorded_not_tried_again_from_the_same_checkpoint_and_listed(tmp_path, monkeypatch):
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    state = tmp_path / "runs" / "s" / "checkpoints" / "r" / "checkpoint"
    state.parent.mkdir(parents=True)
    state.write_text('model_checkpoint_path: "model-4"\n')
    calls, outcome = [], [(exits.DIVERGED, None)]
    monkeypatch.setattr(runner, "_run", lambda argv, out, name, on_line: (calls.append(argv), outcome[0])[1])
    assert study.train("r", ["-opt", "sgd"], total_steps=10) is False
    log = tmp_path / "results" / "s" / "log.txt"
    assert "r diverged (status 3): the study goes on" in log.read_text()
    # Another sitting reads the record: the run is neither trained nor counted as work left, and says why.
    again = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    assert not again.pending("r", 10) and again.pending("other", 10)
    assert again.train("r", ["-opt", "sgd"], total_steps=10) is False and len(calls) == 1
    assert "r skipped: it diverged after outer step 4 and would again (to try it anyway, remove it" in log.read_text()
    assert again.diverged_note(["other", "r"]) == (
        "\nDiverged (NaN or infinite loss or weights), so not in the table: `r` (after outer step 4).\n")
    assert again.diverged_note(["other"]) == ""
    # A different checkpoint (the run trained anew elsewhere) is tried; once it finishes it is no longer
    # listed, nor in the file.
    state.write_text('model_checkpoint_path: "model-6"\n')
    assert again.pending("r", 10) and again.diverged_note(["r"]) == ""
    outcome[0] = (exits.DONE, None)
    assert again.train("r", ["-opt", "sgd"], total_steps=10) is True
    assert len(calls) == 2 and calls[-1][-1] == "-rl" and runner.Diverged(again.diverged.path).runs == {}


def test_a_run_that_diverges_before_any_checkpoint_is_skipped_until_its_record_is_removed(tmp_path, monkeypatch):
    # From scratch it would diverge again, checkpoint folder wiped or not: only the user can say to retry.
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    calls = []
    diverges = (exits.DIVERGED, None)
    monkeypatch.setattr(runner, "_run", lambda argv, out, name, on_line: (calls.append(argv), diverges)[1])
    assert study.train("q", ["-opt", "sgd"], total_steps=10) is False and not study.pending("q", 10)
    assert study.train("q", ["-opt", "sgd"], total_steps=10) is False and len(calls) == 1
    study.diverged.discard("q")
    assert study.pending("q", 10)


def test_a_stop_signal_during_a_run_that_diverges_records_it_and_ends_the_study(tmp_path, monkeypatch):
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    monkeypatch.setattr(runner, "_run", lambda argv, out, name, on_line: (exits.DIVERGED, signal.SIGINT))
    with pytest.raises(SystemExit) as stop:
        study.train("r", ["-opt", "sgd"], total_steps=10)
    assert stop.value.code == exits.INTERRUPTED and study.is_diverged("r")


def test_a_runner_that_fails_while_a_stage_runs_stops_the_stage_first(tmp_path):
    # The stage (its own process group, out of a terminal's reach) must not outlive the script: it gets
    # SIGTERM, as from a Ctrl-C, and is waited for.
    script, saved = tmp_path / "child.py", tmp_path / "saved"
    script.write_text("import pathlib, signal, sys, time\n"
                      "signal.signal(signal.SIGTERM, lambda *_: (pathlib.Path(sys.argv[1]).write_text('yes'), "
                      "sys.exit(143)))\n"
                      "print('ready', flush=True)\n"
                      "time.sleep(60)\n")

    def cannot_write():
        raise OSError(28, "No space left on device")

    with open(tmp_path / "out.log", "w") as out, pytest.raises(OSError, match="No space left"):
        runner._run([str(script), str(saved)], out, "child", on_line=cannot_write)
    assert saved.read_text() == "yes"


def authors_rate(regimes, epoch):
    """The rate of train.lua's learning_rate_schedule at (1-based) ``epoch``: the first matching row."""
    return next(rate for first, last, rate in regimes if first <= epoch <= last)


# train.lua (ucla-vision/entropy-sgd): regimes for L = 0 (mnistconv and mnistfc) and for L > 0 (mnistconv,
# mnistfc), in their (outer) epochs; 100 epochs, 5 outer epochs.
SGD_REGIMES = [(1, 30, 0.1), (30, 60, 0.1 * 0.2), (60, 150, 0.1 * 0.2 ** 2)]
ESGD_REGIMES = {"lenet": [(1, 2, 1), (3, 7, 0.1), (8, 15, 0.01)], "mnistfc": [(1, 2, 1), (3, 15, 0.1)]}


@pytest.mark.parametrize("model", ["lenet", "mnistfc"])
def test_protocol_recipes_are_the_authors(model):
    from config import config_train
    from training import schedule, settings

    def parsed(recipe):
        c = mnist_protocol.Config(model, recipe, 1)
        return settings.parse_settings(mnist_protocol.train_flags(c, 1, "fashion-mnist", 60000), config_train)

    def rate(s, epoch):
        base, decay, boundaries = schedule.schedule_settings(s)
        return base * decay ** sum(epoch >= b for b in boundaries)

    sgd, adam, esgd = parsed("sgd"), parsed("adam"), parsed("esgd")
    for epoch in range(1, 101):  # their epoch n is our effective epochs [n - 1, n)
        assert rate(sgd, epoch - 0.5) == pytest.approx(authors_rate(SGD_REGIMES, epoch))
        assert rate(adam, epoch - 0.5) == pytest.approx(1e-3 / 0.1 * authors_rate(SGD_REGIMES, epoch))
    for outer_epoch in range(1, 6):  # an outer epoch of L = 20 minibatches a step: 20 effective epochs
        assert rate(esgd, 20 * outer_epoch - 10) == pytest.approx(authors_rate(ESGD_REGIMES[model], outer_epoch))
    for s in (sgd, adam, esgd):
        assert (s.batch_size, s.augment, s.epochs, s.model) == (128, False, 100, model)
    assert sgd.weight_decay == adam.weight_decay == 0
    assert (sgd.optimizer, sgd.momentum, sgd.nesterov) == ("momentum", 0.9, True)
    # their README's command: -L 20 --gamma 1e-4 --scoping 1e-3 --noise 1e-4; lclr 0.1 and beta1 0.75 are
    # entropyoptim.lua's defaults; its outer step applies no momentum; --L2 defaults to 0
    assert (esgd.optimizer, esgd.L, esgd.g0, esgd.g1, esgd.epsilon) == ("entropy-sgd", 20, 1e-4, 1e-3, 1e-4)
    assert (esgd.langevin_lr, esgd.mu_decay, esgd.momentum, esgd.nesterov) == (0.1, 0.75, 0.9, True)
    assert (esgd.esgd_outer_momentum, esgd.esgd_weight_decay) == (0, 0)


def test_flatness_table_is_mean_and_std_per_configuration_over_the_runs_measured():
    def result(error, loss, top, normalised):
        return {"test_error": error, "flatness": {"train_loss": loss, "hessian_top": top,
                                                  "hessian_top_normalised": normalised,
                                                  "local_entropy": {"x_mu_norm": 1.0, "inner_loss": loss + 0.5}}}

    results = {"a-seed1": result(0.10, 0.2, [3.0, 2.0, 1.0], [30.0, 20.0, 10.0]),
               "a-seed2": result(0.12, 0.4, [5.0, 2.0, 1.0], [50.0, 20.0, 10.0]),
               "b-seed1": result(0.20, 0.3, [1.0, 1.0, 1.0], [9.0, 8.0, 7.0])}
    # b-seed2 and c-seed1 have no result (not measured up to date): left out, and c with it
    rows = runner.flatness_table(results, {"a": ["a-seed1", "a-seed2"], "b": ["b-seed1", "b-seed2"],
                                           "c": ["c-seed1"]}).splitlines()[2:]
    assert rows[0] == ("| a | 2 | 11.00 ± 1.41 | 0.3000 ± 0.1414 | 4.00 ± 1.41 | 2.00 ± 0.00 | 1.00 ± 0.00 "
                       "| 40.00 ± 14.14 | 20.00 ± 0.00 | 10.00 ± 0.00 | 1.000 ± 0.000 | +0.5000 ± 0.0000 |")
    assert rows[1:] == ["| b | 1 | 20.00 | 0.3000 | 1.00 | 1.00 | 1.00 | 9.00 | 8.00 | 7.00 | 1.000 | +0.5000 |"]


def test_time_left_borrows_a_rate_per_minibatch_not_per_outer_step(tmp_path):
    # Only lenet-sgd has trained: 100 s for 1000 outer steps of 1 minibatch, 0.1 s a minibatch. lenet-esgd
    # (20 minibatches an outer step) and lenet-parle-n3 (60) borrow that rate per minibatch.
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    study.timings.add("lenet-sgd-seed1", 100.0, 1000)
    Config = mnist_protocol.Config
    runs = [(Config("lenet", "sgd", 1), 1), (Config("lenet", "esgd", 1), 1), (Config("lenet", "parle-n3", 1), 1)]
    left = mnist_protocol.time_left(study, runs, 60000, start=1)
    assert left == pytest.approx(0.1 * 2344 * (20 + 60))
    assert mnist_protocol.time_left(runner.Study("t", runs_root=str(tmp_path / "r2"),
                                                 results_root=str(tmp_path / "o2")), runs, 60000) is None


def test_a_claim_holds_when_the_mean_difference_is_within_its_limit_and_shows_its_standard_error():
    # candidate 9.0, 9.2 (mean 9.1, sample var 0.02); reference 9.0, 9.0, 9.3 (mean 9.1, sample var 0.03)
    diff, se = claims.difference([9.0, 9.2], [9.0, 9.0, 9.3])
    assert diff == pytest.approx(0.0) and se == pytest.approx((0.02 / 2 + 0.03 / 3) ** 0.5)
    assert claims.difference([9.0], [8.0, 8.2])[1] is None  # one seed: no spread to speak of
    assert claims.lowest({"a": [3.0, 1.0], "b": [1.9]}) == ("b", [1.9])
    rows = claims.table([claims.Claim("within", ("x", [9.3]), ("y", [9.2]), 0.1),
                         claims.Claim("no worse", ("x", [9.3]), ("y", [9.2]), 0.0),
                         claims.Claim("as shown", ("x", [9.3049]), ("y", [9.1951]), 0.1),
                         claims.Claim("smaller", ("x", [9.2]), ("y", [9.2]), 0.0, strict=True),
                         claims.Claim("smaller", ("x", [9.19]), ("y", [9.2]), 0.0, strict=True)]).splitlines()
    assert rows[2] == "| within | x 9.30 (1) | y 9.20 (1) | +0.10 | yes |"
    assert rows[3] == "| no worse | x 9.30 (1) | y 9.20 (1) | +0.10 | no |"
    assert rows[4] == "| as shown | x 9.30 (1) | y 9.20 (1) | +0.10 | yes |"  # not 0.1098: the means shown
    assert rows[5] == "| smaller | x 9.20 (1) | y 9.20 (1) | +0.00 | no |"  # level is not smaller
    assert rows[6] == "| smaller | x 9.19 (1) | y 9.20 (1) | -0.01 | yes |"


def fake_run(errors_by_epoch):
    """An analysis.events Run whose test error is ``errors_by_epoch`` ({effective epoch: error fraction})."""
    epochs = np.array(sorted(errors_by_epoch), np.float64)
    error = Series(steps=np.arange(len(epochs)), epochs=epochs, values=np.array([errors_by_epoch[e] for e in epochs]))
    return Run(name="r", path="r", test_error=error, train_loss=error, wall_time=1.0)


def test_protocol_claims_compare_entropy_sgd_with_the_best_baseline_and_parle_with_the_better_x3_run():
    C = mnist_protocol.Config
    loaded = {C("lenet", "sgd", 1): {1: fake_run({80: 0.095, 100: 0.092}), 2: fake_run({80: 0.096, 100: 0.094})},
              C("lenet", "adam", 1): {1: fake_run({80: 0.098, 100: 0.091}), 2: fake_run({100: 0.099})},
              C("lenet", "esgd", 1): {1: fake_run({78: 0.2, 80.2: 0.094, 100: 0.093}),
                                      2: fake_run({80.1: 0.095, 100.01: 0.092}), 3: fake_run({100: 0.5})},
              C("lenet", "parle-n3", 1): {1: fake_run({100: 0.090})},
              C("lenet", "esgd", 3): {1: fake_run({300: 0.091})}, C("lenet", "sgd", 3): {1: fake_run({300: 0.089})}}
    sharpness = {C("lenet", "sgd", 1): {1: 7.0, 2: 9.0}, C("lenet", "adam", 1): {1: 6.0, 2: 6.5},
                 C("lenet", "esgd", 1): {1: 5.0, 2: 6.0}}
    found = mnist_protocol.protocol_claims(loaded, sharpness, {})
    # Over the seeds all sides finished (1 and 2: esgd's seed 3 has no baseline to meet); the best baseline
    # on them is SGD (mean 9.3 against Adam's 9.5).
    assert [(c.candidate, c.reference, c.limit, c.note) for c in found] == [
        (("lenet-esgd", pytest.approx([9.3, 9.2])), ("lenet-sgd", pytest.approx([9.2, 9.4])), 0.1, ""),
        (("lenet-esgd at 80", pytest.approx([9.4, 9.5])), ("lenet-sgd", pytest.approx([9.2, 9.4])), 0.0, ""),
        (("lenet-esgd", [5.0, 6.0]), ("lenet-adam", [6.0, 6.5]), 0.0, ""),
        (("lenet-parle-n3", pytest.approx([9.0])), ("lenet-sgd-x3", pytest.approx([8.9])), 0.1, "")]
    assert "0.50 at 80" in found[0].text  # the paper's figure beside ours
    # A diverged seed leaves each claim it touches undecided; without a flatness result for every
    # configuration, no sharpness claim; without mnistfc runs no mnistfc claim.
    del sharpness[C("lenet", "adam", 1)]
    found = mnist_protocol.protocol_claims(loaded, sharpness, {C("lenet", "adam", 1): [3]})
    assert [c.note for c in found] == ["lenet-adam-seed3 diverged"] * 2 + [""]
    assert claims.table(found[:1]).splitlines()[2].endswith("| undecided: lenet-adam-seed3 diverged |")
def test_a_run_time_is_its_counted_rate_times_its_steps(tmp_path):
    # 7 of the run's 10 outer steps were counted, in 90 s; a sitting a killed runner never counted is not
    # in the rate, and the time is that of all 10 steps at it.
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    state = tmp_path / "runs" / "s" / "checkpoints" / "r" / "checkpoint"
    state.parent.mkdir(parents=True)
    state.write_text('model_checkpoint_path: "model-10"\n')
    assert mnist_protocol.run_time(study, "r") is None
    study.timings.add("r", 90.0, 7)
    assert mnist_protocol.run_time(study, "r") == pytest.approx(90.0 / 7 * 10)


def test_the_readme_section_is_rewritten_between_its_lines_and_the_rest_kept(tmp_path):
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    readme = tmp_path / "results" / "s" / "README.md"
    study.fill_readme("results", "first\n")  # no README yet: one that holds the section
    assert readme.read_text() == "# s\n\n<!-- results -->\nfirst\n<!-- /results -->\n"
    readme.write_text("# S\nby hand\n<!-- results -->\nold\ntable\n<!-- /results -->\nafter\n")
    study.fill_readme("results", "new")
    assert readme.read_text() == "# S\nby hand\n<!-- results -->\nnew\n<!-- /results -->\nafter\n"
    readme.write_text("# S\n<!-- results -->\nno end\n")
    with pytest.raises(runner.ReadmeError, match="has no lines <!-- results --> and <!-- /results -->"):
        study.fill_readme("results", "new")
    assert readme.read_text() == "# S\n<!-- results -->\nno end\n"  # left as it was


def write_save(run_dir, step, data=b"weights"):
    """Write a one-shard save of outer step ``step`` into ``run_dir`` (bytes, not tensors: the runner only
    lists and hashes a save's files) and list it in the state file; return the SHA-256 of its files."""
    os.makedirs(run_dir, exist_ok=True)
    index = b"index of step %d" % step
    with open(os.path.join(run_dir, "model-%d.index" % step), "wb") as f:
        f.write(index)
    with open(os.path.join(run_dir, "model-%d.data-00000-of-00001" % step), "wb") as f:
        f.write(data)
    with open(os.path.join(run_dir, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "model-%d"\n' % step)
    return save_digest(run_dir, step)


def save_digest(run_dir, step):
    """Return the SHA-256 of the index, then the data, of ``write_save``'s save of ``step`` as on disk."""
    contents = b""
    for name in ("model-%d.index" % step, "model-%d.data-00000-of-00001" % step):
        with open(os.path.join(run_dir, name), "rb") as f:
            contents += f.read()
    return hashlib.sha256(contents).hexdigest()


def measured_result(run_dir, step, digest, flags=(), version=evaluate.RESULTS_VERSION, **numbers):
    """Return an evaluate.py --json result of the save of ``step`` in ``run_dir`` with SHA-256 ``digest``,
    measured with ``flags``."""
    options = evaluate.measurement_options(evaluate.parse_args([run_dir] + list(flags))[1])
    return dict(checkpoint=os.path.join(run_dir, "model-%d" % step), checkpoint_sha256=digest, version=version,
                options=options, **numbers)


def test_the_progress_line_counts_the_training_so_far_until_every_run_has_ended(tmp_path):
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    runs = [(mnist_protocol.Config("lenet", recipe, 1), 1) for recipe in ("sgd", "adam")]
    finished = mnist_protocol.run_name(*runs[0])
    os.makedirs(os.path.join(study.ckpt, finished))
    with open(os.path.join(study.ckpt, finished, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "model-%d"\n' % mnist_protocol.total_steps(runs[0][0], 60000))
    study.timings.add(finished, 1800.0, 10)
    assert mnist_protocol.progress_line(study, runs, 60000).endswith(
        ": 1 of 2 runs finished, 30.0 min of training so far.*")
    study.diverged.add(mnist_protocol.run_name(*runs[1]), 0)  # the other one has ended too
    assert mnist_protocol.progress_line(study, runs, 60000).endswith(
        ": 1 of 2 runs finished, 1 diverged, 30.0 min of training in all.*")


def test_the_report_fills_the_readme_with_tables_figure_flatness_and_claims(tmp_path):
    # LeNet's three main configurations finished for seed 1 (test error at effective epochs 60, 80, 100);
    # Adam's seed 2 diverged. Every other run of the plan for seeds 1 and 2 has not started.
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    (tmp_path / "results" / "s" / "README.md").write_text("# by hand\n<!-- results -->\n<!-- /results -->\nend\n")
    C = mnist_protocol.Config
    errors = {"sgd": (0.10, 0.095, 0.092), "adam": (0.11, 0.10, 0.097), "esgd": (0.099, 0.094, 0.093)}
    for recipe, (at_60, at_80, at_100) in errors.items():
        name = mnist_protocol.run_name(C("lenet", recipe, 1), 1)
        write_run(study.logs, name, 1.0, 1.0, {20: 1.0, 60: 0.5, 80: 0.4, 100: 0.3},
                  {60: at_60, 80: at_80, 100: at_100})
        total = mnist_protocol.total_steps(C("lenet", recipe, 1), 60000)
        digest = write_save(os.path.join(study.ckpt, name), total)
        study.timings.add(name, 600.0, total)
        sharpest = {"sgd": 7.0, "adam": 6.0, "esgd": 5.0}[recipe]
        flatness = {"hessian_top": [3.0, 2.0, 1.0], "hessian_top_normalised": [sharpest, 2.0, 1.0],
                    "train_loss": 0.1, "local_entropy": {"x_mu_norm": 0.5, "inner_loss": 0.09}}
        with open(os.path.join(study.flatness_dir, name + ".json"), "w") as f:
            json.dump(measured_result(os.path.join(study.ckpt, name), total, digest, mnist_protocol.FLATNESS_FLAGS,
                                      test_error=at_100, flatness=flatness), f)
    # Parle (100 effective epochs per replica) and SGD x3 (300) finished for seed 1, at equal compute.
    for config, test in ((C("lenet", "parle-n3", 1), {60: 0.1, 80: 0.095, 100: 0.09}),
                         (C("lenet", "sgd", 3), {180: 0.1, 240: 0.095, 300: 0.091})):
        name = mnist_protocol.run_name(config, 1)
        write_run(study.logs, name, 1.0, 1.0, {20: 1.0, max(test): 0.3}, test)
        os.makedirs(os.path.join(study.ckpt, name))
        with open(os.path.join(study.ckpt, name, "checkpoint"), "w") as f:
            f.write('model_checkpoint_path: "model-%d"\n' % mnist_protocol.total_steps(config, 60000))
    study.diverged.add("lenet-adam-seed2", 0)
    mnist_protocol.report(study, [1, 2], 60000, measure_flatness=False)
    text = (tmp_path / "results" / "s" / "README.md").read_text()
    assert text.startswith("# by hand\n<!-- results -->\n*Written by") and text.endswith("<!-- /results -->\nend\n")
    assert "5 of 18 runs finished, 1 diverged, 30.0 min of training so far" in text
    assert "| lenet-esgd | 1 | 100.0 | 9.30 | 9.30 | 9.90 (at 60.0) | 9.40 (at 80.0) | 10.0 min |" in text
    assert "so not in the table: `lenet-adam-seed2` (after outer step 0)" in text
    assert "![lenet: test error against effective epochs](errors-lenet.png)\n\nFlatness of" in text  # no caption
    assert ("![lenet: test error against effective epochs](equal-compute-lenet.png)" + mnist_protocol.PARLE_AXIS
            in text)
    assert "| error near 60 (%; x3 runs: 180) | error near 80 (%; x3 runs: 240) |" in text
    # the figure puts Parle's 100 effective epochs per replica at the 300 of its three replicas, beside SGD x3's
    drawn = (tmp_path / "runs" / "s" / "logs" / "compare-equal-compute-lenet.log").read_text()
    assert "| lenet-parle-n3 | 1 | 300.0 |" in drawn and "| lenet-sgd-x3 | 1 | 300.0 |" in drawn
    assert "| lenet-sgd-x3 | 1 | 300.0 | 9.10 | 9.10 | 10.00 (at 180.0) | 9.50 (at 240.0) | – |" in text
    assert "| lenet-parle-n3 9.00 (1) | lenet-sgd-x3 9.10 (1) | -0.10 | yes |" in text
    assert (tmp_path / "results" / "s" / "errors-lenet.png").stat().st_size > 0
    assert "| lenet-sgd | 1 | 9.20 | 0.1000 | 3.00 | 2.00 | 1.00 | 7.00 | 2.00 | 1.00 | 0.500 | -0.0100 |" in text
    assert "| lenet-esgd 9.30 (1) | lenet-sgd 9.20 (1) | +0.10 | undecided: lenet-adam-seed2 diverged |" in text
    assert "| lenet-esgd 5.00 (1) | lenet-adam 6.00 (1) | -1.00 | undecided: lenet-adam-seed2 diverged |" in text


def test_a_results_readme_without_its_section_lines_stops_the_study_before_it_trains(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "EXPERIMENTS", str(tmp_path))
    readme = tmp_path / "results" / "mnist-protocol-fashion-mnist" / "README.md"
    readme.parent.mkdir(parents=True)
    readme.write_text("# an older page\nRESULTS\n")
    monkeypatch.setattr(runner, "_run", lambda *args: pytest.fail("nothing may run"))
    assert mnist_protocol.main([]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: %s has no lines <!-- results -->" % readme)


def test_a_second_process_waits_for_the_results_lock_and_loses_no_log_line(tmp_path):
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    study.log.add("first")
    other = threading.Thread(target=study.log.add, args=("second",))
    with lock.exclusive(study.results_lock):  # as another process rewriting log.txt holds it
        other.start()
        other.join(0.5)
        assert other.is_alive() and (tmp_path / "results" / "s" / "log.txt").read_text() == "first\n"
        with open(tmp_path / "results" / "s" / "log.txt", "a") as f:
            f.write("theirs\n")
    other.join(5)
    assert (tmp_path / "results" / "s" / "log.txt").read_text() == "first\ntheirs\nsecond\n"


def test_a_second_study_is_refused_with_one_line_naming_the_first_and_logs_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "EXPERIMENTS", str(tmp_path))
    monkeypatch.setattr(runner, "_run", lambda *args: pytest.fail("nothing may run"))
    first = runner.Study("mnist-protocol-fashion-mnist")
    log = tmp_path / "results" / "mnist-protocol-fashion-mnist" / "log.txt"
    with first.training():
        assert mnist_protocol.main([]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is in use by process %d" % os.getpid() in err
        assert "wait for that study to end or stop it" in err
        assert not log.exists()
    with first.training():  # released when the block ends
        pass


def test_a_run_measured_by_another_process_meanwhile_is_not_measured_again(tmp_path, monkeypatch):
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    digest = write_save(os.path.join(study.ckpt, "r"), 10)
    monkeypatch.setattr(runner, "_run", lambda *args: pytest.fail("measured twice"))
    found = []
    other = threading.Thread(target=lambda: found.append(study.flatness(["r"], [])))
    result = measured_result(os.path.join(study.ckpt, "r"), 10, digest, test_error=0.1)
    with lock.exclusive(os.path.join(study.flatness_dir, "r.lock")):  # a --report-only measuring r
        other.start()
        other.join(0.5)
        assert other.is_alive()
        with open(os.path.join(study.flatness_dir, "r.json"), "w") as f:
            json.dump(result, f)
    other.join(5)
    assert found == [{"r": result}]


class FakeEvaluate(object):
    """evaluate.py as a stage of ``study``: writes run ``r``'s result of the save of ``step`` (a test error
    counting the measurements) and records the step measured."""

    def __init__(self, study, step):
        self.run_dir, self.path = os.path.join(study.ckpt, "r"), os.path.join(study.flatness_dir, "r.json")
        self.step, self.measured = step, []

    def __call__(self, argv, *_):
        assert argv[:4] == ["evaluate.py", self.run_dir, "--json", self.path]
        self.measured.append(self.step)
        digest = save_digest(self.run_dir, self.step)
        with open(self.path, "w") as f:
            json.dump(measured_result(self.run_dir, self.step, digest, argv[4:], test_error=len(self.measured)), f)
        return 0, None


def test_a_result_out_of_date_is_measured_again_and_never_reported(tmp_path, monkeypatch, capsys):
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    fake = FakeEvaluate(study, 10)
    monkeypatch.setattr(runner, "_run", fake)
    write_save(fake.run_dir, 10)
    with open(fake.path, "w") as f:  # measured by the evaluate.py before results had a version
        json.dump({"checkpoint": os.path.join(fake.run_dir, "model-10"), "test_error": 0.5}, f)
    assert study.flatness(["r"], [], measure=False) == {}
    assert "flatness-r: its result is out of date, so not reported" in capsys.readouterr().out
    assert study.flatness(["r"], [])["r"]["test_error"] == 1
    assert "flatness-r: the result on record is out of date" in capsys.readouterr().out
    assert study.flatness(["r"], [])["r"]["test_error"] == 1 and fake.measured == [10]  # up to date: kept
    write_save(fake.run_dir, 10, b"trained again")  # the same step, other weights
    assert study.flatness(["r"], [], measure=False) == {}
    assert study.flatness(["r"], [])["r"]["test_error"] == 2
    fake.step = 20
    write_save(fake.run_dir, 20)  # trained further
    assert study.flatness(["r"], [])["r"]["test_error"] == 3
    assert study.flatness(["r"], ["--seed", "1"])["r"]["test_error"] == 4  # other flags
    assert study.flatness(["r"], ["--seed", "1"])["r"]["test_error"] == 4
    with open(fake.path) as f:
        result = json.load(f)
    with open(fake.path, "w") as f:
        json.dump(dict(result, version=evaluate.RESULTS_VERSION + 1), f)
    assert study.flatness(["r"], ["--seed", "1"])["r"]["test_error"] == 5 and fake.measured == [10, 10, 20, 20, 20]


def test_a_result_of_an_older_save_than_the_newest_is_not_reported_and_says_why(tmp_path, monkeypatch, capsys):
    # evaluate.py measured model-10: model-20, complete on disk, could not be read
    study = runner.Study("s", runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    fake = FakeEvaluate(study, 10)
    monkeypatch.setattr(runner, "_run", fake)
    write_save(fake.run_dir, 10)
    write_save(fake.run_dir, 20)
    assert study.flatness(["r"], []) == {} and fake.measured == [10]
    err = capsys.readouterr().err
    assert "flatness-r: evaluate.py did not measure the run's newest save (see " in err and err.count("\n") == 1


def prepared_data(tmp_path, dataset="fashion-mnist"):
    """Write the meta.json that prepare-data leaves for the MNIST protocol's study of ``dataset`` (runs under
    ``tmp_path``/runs); return the study's data folder."""
    meta = tmp_path / "runs" / ("mnist-protocol-" + dataset) / "datasets" / dataset / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text('{"train_size": 60000}')
    return meta.parent.parent


def test_a_report_that_fails_between_runs_leaves_the_training_to_go_on(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "EXPERIMENTS", str(tmp_path))
    monkeypatch.setattr(runner, "_run", lambda *args: (0, None))  # prepare-data
    prepared_data(tmp_path)
    trained = []

    def train_all(study, runs, dataset, train_size, finished):
        for run in ("a", "b"):
            trained.append(run)
            finished()

    reports = []

    def report(*args, **kwargs):
        reports.append(len(trained))
        if len(reports) == 1:
            raise runner.StageFailed(2)

    monkeypatch.setattr(mnist_protocol, "train_all", train_all)
    monkeypatch.setattr(mnist_protocol, "report", report)
    assert mnist_protocol.main([]) == 0
    assert trained == ["a", "b"] and reports == [1, 2, 2]
    log = (tmp_path / "results" / "mnist-protocol-fashion-mnist" / "log.txt").read_text()
    assert "the report failed (status 2): training goes on" in log


def test_the_same_protocol_runs_on_mnist_in_a_study_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "EXPERIMENTS", str(tmp_path))
    stages, trained = [], []
    monkeypatch.setattr(runner, "_run", lambda argv, *_: stages.append(argv) or (0, None))
    monkeypatch.setattr(runner.Study, "train", lambda study, run, flags, total, finished: trained.append(
        (study.runs, run, flags)))
    monkeypatch.setattr(mnist_protocol, "report", lambda *args, **kwargs: None)
    data = prepared_data(tmp_path, "mnist")
    assert mnist_protocol.main(["-d", "mnist", "--seeds", "1"]) == 0
    assert stages == [["-m", "data", "--dataset", "mnist", "--data-dir", str(data)]]
    assert [run for _, run, _ in trained] == [mnist_protocol.run_name(c, 1) for c in mnist_protocol.MAIN
                                              + mnist_protocol.EQUAL_COMPUTE]
    for runs, _, flags in trained:
        assert runs == str(tmp_path / "runs" / "mnist-protocol-mnist") and flags[:2] == ["-d", "mnist"]
    assert "prepare-data" in (tmp_path / "results" / "mnist-protocol-mnist" / "log.txt").read_text()


def test_a_report_only_runs_beside_a_study_that_another_process_trains(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "EXPERIMENTS", str(tmp_path))
    holder = subprocess.Popen(  # another process trains the study: it holds the study's lock
        [sys.executable, "-c", "import sys, time; from experiments import runner; runner.EXPERIMENTS = sys.argv[1]\n"
         "with runner.Study('mnist-protocol-fashion-mnist').training():\n    print('held', flush=True); time.sleep(60)",
         str(tmp_path)], cwd=runner.REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        monkeypatch.setattr(runner, "_run", lambda *args: (0, None))  # prepare-data
        prepared_data(tmp_path)
        reports = []
        monkeypatch.setattr(mnist_protocol, "report", lambda *args, **kwargs: reports.append(1))
        monkeypatch.setattr(mnist_protocol, "train_all", lambda *args: pytest.fail("a second process trains"))
        assert mnist_protocol.main(["--report-only", "--skip-flatness"]) == 0 and reports == [1]
        assert mnist_protocol.main([]) == 1
        assert "is in use by process %d" % holder.pid in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()

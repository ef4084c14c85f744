"""What every experiment script shares: run the project's programs as stages, skip what is done, resume
what was cut off, log every command with its wall time, and estimate the time left.

A study keeps everything it makes under ``experiments/runs/<study>/`` (never committed): datasets,
checkpoints, event files, flatness JSONs, one log per stage, ``timings.json`` (each run's training time
over its sittings, brought up to date at every checkpoint) and ``diverged.json``. What is committed goes
to ``experiments/results/<study>/``: the README's generated section (``fill_readme``), figures and
``log.txt``.

Stopping: Ctrl-C, SIGTERM or SIGHUP to the script is passed on, once, to the stage running (train.py saves
a checkpoint and exits), and the script then exits with the signal's status (130, 143, 129); between stages
it ends at once with one line and that status. A run stopped during its last step ends all the same, and
is counted finished first. A script killed outright (SIGKILL, the out-of-memory killer) takes its stage
with it: the kernel sends the stage SIGTERM (on Linux), so it saves.
Run the same command again to go on: finished runs are skipped and a run with checkpoints is resumed with
``-rl``, so no more than the last checkpoint interval is lost. A training run that fails otherwise is
logged as failed and the study goes on with the next (the next call tries it again); one that diverges (a
NaN loss, train.py's status 3) is recorded in ``diverged.json`` and not tried again, since it would
diverge again from the same checkpoint, and the report lists it. Any other stage that fails ends the
script.

One process trains a study at a time (``Study.training``: a second is refused, naming the first). A
``--report-only`` may run beside it; the two take turns on ``log.txt`` and the README
(``runs/<study>/results.lock``), so neither loses the other's lines.
"""
import contextlib
import ctypes
import functools
import json
import os
import platform
import signal
import subprocess
import sys
import time

import numpy as np

import evaluate
from training import checkpoint_files
from training import exits
from training import lock
from training import stop
from training.atomic_file import write_atomically
from training.console import SafeStream, quiet_exit
from training.errors import RunError

EXPERIMENTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(EXPERIMENTS)
PYTHON = sys.executable
# Linux's prctl (looked up here, not in a stage's process after the fork) and its option that names the
# signal a process gets when its parent dies.
PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
PR_SET_PDEATHSIG = 1
# Lines of train.py's output also shown on the console while a stage writes its log (the rest: its log).
ECHOED = ("eval ", "final ", "error", "resum", "skipped", "warning")


class ReadmeError(Exception):
    """A results README without the lines around its generated section."""


def run_script(body):
    """Run a study script's ``body()``; return its exit status, or 1 with one line when the study cannot go
    on (OSError: a full disk, say; ReadmeError; RunError: the study trained by another process, a damaged
    record), or 130, 143 or 129 with one line for a stop between stages (a stage gets it passed on:
    ``_run``). Meanwhile the console cannot stop the study: after a SIGHUP its lines are lost, not the run."""
    console = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)

    def guarded():
        try:
            return body()
        except (OSError, ReadmeError, RunError) as e:
            print("error: %s" % e, file=sys.stderr)
            return 1
    try:
        return stop.run_stoppable(guarded, "stopped: run the same command again to go on")
    finally:
        sys.stdout, sys.stderr = console
        quiet_exit()  # the streams themselves: a dead one flushed at exit would make the status 120


class StageFailed(SystemExit):
    """A stage ended with a non-zero status (``code``): uncaught, it ends the script with that status."""


class Study(object):
    """The folders of one study and its log; ``stage`` runs one program, ``train`` one training run."""

    def __init__(self, name, runs_root=None, results_root=None):
        self.runs = os.path.join(runs_root or os.path.join(EXPERIMENTS, "runs"), name)
        self.results = os.path.join(results_root or os.path.join(EXPERIMENTS, "results"), name)
        self.data = os.path.join(self.runs, "datasets")
        self.ckpt, self.logs = os.path.join(self.runs, "checkpoints"), os.path.join(self.runs, "tensorboard")
        self.flatness_dir, self.stage_logs = os.path.join(self.runs, "flatness"), os.path.join(self.runs, "logs")
        for folder in (self.results, self.stage_logs, self.flatness_dir):
            os.makedirs(folder, exist_ok=True)
        self.results_lock = os.path.join(self.runs, "results.lock")
        self.log = Log(os.path.join(self.results, "log.txt"), self.results_lock)
        self.timings = Timings(os.path.join(self.runs, "timings.json"))
        self.diverged = Diverged(os.path.join(self.runs, "diverged.json"))

    @contextlib.contextmanager
    def training(self):
        """Hold the study's lock for the block: one process trains a study at a time. A second one would
        find each run busy (train.py locks its folders), log it as failed and train the next, out of the
        plan's order; it is refused instead, with one RunError naming the holder. A --report-only, which
        trains nothing, does not take it."""
        with lock.locked([self.runs], what=self.runs,
                         advice="wait for that study to end or stop it"):
            yield

    def stage(self, name, argv):
        """Run ``python argv`` from the repository root, its output to ``logs/NAME.log``; return its wall time.

        A stage that fails ends the script with its status (later stages need its outputs), and so does
        a stop signal passed on to it.
        """
        seconds, status, stopped = self._logged_run(name, argv)
        _exit_if_stopped(stopped)
        self._exit_on_failure(name, status)
        return seconds

    def _logged_run(self, name, argv, on_line=None):
        """Run the stage (``on_line()`` called after each line of its output) and log its command, wall time
        and status; return (seconds, status, the stop signal passed on to it or None)."""
        start = time.time()
        with open(os.path.join(self.stage_logs, name + ".log"), "a") as out:
            status, stopped = _run(argv, out, name, on_line)
        seconds = time.time() - start
        shown = " ".join(os.path.relpath(a, REPO) if a.startswith(REPO) else a for a in argv)
        self.log.add("[%s] %-30s %8.1f s  status %d  $ python %s"
                     % (time.strftime("%Y-%m-%d %H:%M:%S"), name, seconds, status, shown))
        return seconds, status, stopped

    def _exit_on_failure(self, name, status):
        """Raise StageFailed when the stage failed (after one line saying where to look)."""
        if status != 0:
            print("stage %s ended with status %d: see %s" % (name, status, os.path.join(self.stage_logs,
                                                                                       name + ".log")),
                  file=sys.stderr, flush=True)
            raise StageFailed(status)

    def checkpoint_step(self, run):
        """Return the outer step of run ``run``'s newest checkpoint (0 when it has none)."""
        return checkpoint_step(os.path.join(self.ckpt, run))

    def train(self, run, flags, total_steps, finished=lambda: None):
        """Train run ``run`` (train.py ``flags``) to ``total_steps`` outer steps: skipped when there,
        resumed with -rl when it has checkpoint files, not tried again when it diverged after the checkpoint
        it would resume from (a line says so). Calls ``finished()`` when it trains to its end, and returns
        whether it did (a stop signal ends the script, after recording a divergence or calling
        ``finished``: a stop during the last step lets the run end; another failure is logged and returns
        False)."""
        before = self.checkpoint_step(run)
        if before >= total_steps:
            return True
        if self.diverged.at(run, before):
            self.log.add("[%s] %s skipped: it diverged after outer step %d and would again (to try it anyway, "
                         "remove it from %s)" % (time.strftime("%Y-%m-%d %H:%M:%S"), run, before, self.diverged.path))
            return False
        resume = checkpoint_files.holds_checkpoints(os.path.join(self.ckpt, run))
        counted = [(time.time(), before)]

        def count_saved():
            counted[0] = self._count_saved(run, *counted[0])

        _, status, stopped = self._logged_run(run, ["train.py"] + flags + [
            "-n", run, "--data-dir", self.data, "--checkpoint-dir", self.ckpt, "--logdir", self.logs]
            + (["-rl"] if resume else []), on_line=count_saved)
        count_saved()
        if status == exits.DIVERGED:
            self.diverged.add(run, self.checkpoint_step(run))
        elif status == exits.DONE:
            self.diverged.discard(run)
            finished()
        if status in exits.EXIT_STATUS.values():  # stopped: by the stop passed on, or by a signal of its own
            _exit_if_stopped(stopped)
            self._exit_on_failure(run, status)
        if status != exits.DONE:
            self.log.add("[%s] %s %s (status %d): the study goes on; see %s"
                         % (time.strftime("%Y-%m-%d %H:%M:%S"), run,
                            "diverged" if status == exits.DIVERGED else "failed", status,
                            os.path.join(self.stage_logs, run + ".log")))
        _exit_if_stopped(stopped)
        return status == exits.DONE

    def _count_saved(self, run, since, step):
        """Add to ``timings`` the seconds from time ``since`` and the outer steps from ``step`` to run ``run``'s
        newest checkpoint, if it is newer; return the (time, step) that the counted time now ends at.

        Called as the run goes, so that the time of every saved step is on disk: a runner killed outright
        (a lost machine) loses only the time since the last checkpoint, which the steps redone will count."""
        saved = self.checkpoint_step(run)
        if saved <= step:
            return since, step
        now = time.time()
        self.timings.add(run, now - since, saved - step)
        return now, saved

    def is_diverged(self, run):
        """Return whether run ``run`` diverged after the checkpoint it would now resume from."""
        return self.diverged.at(run, self.checkpoint_step(run))

    def diverged_note(self, runs):
        """Return a Markdown paragraph naming the runs of ``runs`` that diverged, for below a table that leaves
        them out ('' when none did)."""
        names = ["`%s` (after outer step %d)" % (r, self.diverged.runs[r]) for r in runs if self.is_diverged(r)]
        if not names:
            return ""
        return "\nDiverged (NaN or infinite loss or weights), so not in the table: %s.\n" % ", ".join(names)

    def flatness(self, runs, flags, measure=True):
        """Run evaluate.py --flatness (with ``flags``) on the final model of every run of ``runs`` without a
        current result (none when not ``measure``); return {run: its result} of the runs that have one,
        read from ``flatness/RUN.json``. A result out of date (``current_result``: of a run since trained
        again or further, or measured with other flags or rules) is measured again, and never reported."""
        options = evaluate.measurement_options(evaluate.parse_args([self.ckpt] + flags)[1])
        results = {}
        for run in runs:
            path, run_dir = os.path.join(self.flatness_dir, run + ".json"), os.path.join(self.ckpt, run)
            result = current_result(path, run_dir, options)
            if result is None and measure:
                result = self._measure_flatness(run, path, run_dir, flags, options)
            elif result is None and os.path.exists(path):
                print("flatness-%s: its result is out of date, so not reported: a report that measures "
                      "will measure it again" % run, flush=True)
            if result is not None:
                results[run] = result
        return results

    def _measure_flatness(self, run, path, run_dir, flags, options):
        """Measure run ``run``'s flatness into ``path`` unless another process (a --report-only) did
        meanwhile; return the result, or None, with a line saying so, when it is still out of date (the
        newest save could not be read, and evaluate.py measured an older one)."""
        with lock.exclusive(os.path.join(self.flatness_dir, run + ".lock")):
            result = current_result(path, run_dir, options)
            if result is None:
                if os.path.exists(path):
                    print("flatness-%s: the result on record is out of date (another checkpoint, other flags "
                          "or another version of evaluate.py): measuring again" % run, flush=True)
                self.stage("flatness-" + run, ["evaluate.py", run_dir, "--json", path] + flags)
                result = current_result(path, run_dir, options)
                if result is None:
                    print("flatness-%s: evaluate.py did not measure the run's newest save (see %s), so it is "
                          "not reported" % (run, os.path.join(self.stage_logs, "flatness-%s.log" % run)),
                          file=sys.stderr, flush=True)
        return result

    def check_readme(self, section):
        """Raise ReadmeError when the results README exists without the lines of ``section`` (``fill_readme``
        would fail on it at the end of the study)."""
        path = os.path.join(self.results, "README.md")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                _split_section(f.read(), section, path)

    def fill_readme(self, section, text):
        """Replace what the results README holds between ``<!-- SECTION -->`` and ``<!-- /SECTION -->`` with
        ``text`` (the rest of the README is written by hand); a study without a README gets one that holds
        only the section."""
        path = os.path.join(self.results, "README.md")
        with lock.exclusive(self.results_lock):
            if not os.path.exists(path):
                page = "# %s\n\n<!-- %s -->\n<!-- /%s -->\n" % (os.path.basename(self.results), section, section)
                write_atomically(path, lambda f: f.write(page.encode("utf-8")))
            fill_section(path, section, text)

    def done(self, run, total_steps):
        """Return whether run ``run`` has reached ``total_steps`` outer steps."""
        return self.checkpoint_step(run) >= total_steps

    def pending(self, run, total_steps):
        """Return whether ``train`` would train run ``run``: neither done nor diverged from its checkpoint."""
        step = self.checkpoint_step(run)
        return step < total_steps and not self.diverged.at(run, step)


def _run(argv, out, name, on_line=None):
    """Run ``python argv`` in its own process group, output to the file ``out``, the ECHOED lines also to
    the console, calling ``on_line()`` after each line; pass the first stop signal (SIGINT, SIGTERM, SIGHUP)
    on to it. Returns (its exit status, the signal passed on or None). Should this script fail while it runs
    (``on_line`` or the console cannot be written, as after a SIGHUP, say), the stage is sent SIGTERM, unless
    a stop is already passed on (a second signal would abort its save), and waited for: it saves, and does
    not outlive the script.

    Its own process group, so that a Ctrl-C reaches it once, through this script, not also from the
    terminal (a second one would abort it unsaved); the same session, so that ``nice`` on the script
    applies to it too (Linux schedules sessions as groups). Should this script be killed outright
    (SIGKILL, the out-of-memory killer), the stage gets SIGTERM too (``_end_with_parent``)."""
    child = subprocess.Popen([PYTHON, "-u"] + argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             process_group=0, text=True, errors="replace",
                             preexec_fn=functools.partial(_end_with_parent, os.getpid()) if PRCTL else None)
    passed_on = []

    def pass_on(signum, _frame):
        if not passed_on:
            passed_on.append(signum)
            child.send_signal(signum)

    old = stop.handle(exits.EXIT_STATUS, pass_on)
    try:
        for line in child.stdout:
            out.write(line)
            out.flush()
            text = line.strip("\r\n").split("\r")[-1]
            if text.startswith(ECHOED):
                print("  %s: %s" % (name, text), flush=True)
            if on_line is not None:
                on_line()
        return child.wait(), (passed_on[0] if passed_on else None)
    except BaseException:
        if child.poll() is None:
            pass_on(signal.SIGTERM, None)  # unless one is passed on already; and a Ctrl-C now passes none
            child.communicate()
        raise
    finally:
        stop.restore(old)


def _end_with_parent(parent):
    """In a stage's process, before it starts (Linux): have the kernel send it SIGTERM when this script
    dies, however it dies. Without it, a train.py whose script was killed trains on unseen (its printing
    to the dead pipe fails quietly), holding its run, which the next start of the study then finds in use."""
    PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the script died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)


def _exit_if_stopped(signum):
    """End the script with the status of stop signal ``signum`` (passed on to a stage), if there was one."""
    if signum is not None:
        print("stopped: run the same command again to go on", file=sys.stderr, flush=True)
        sys.exit(exits.EXIT_STATUS[signum])


def current_result(path, run_dir, options):
    """Return the evaluate.py --json result in ``path`` when it is current: measured under evaluate.py's
    present rules (RESULTS_VERSION) with ``options`` (evaluate.measurement_options), on the newest complete
    save of ``run_dir`` as that save is now. Else None: no file, an unreadable one, or out of date."""
    try:
        with open(path) as f:
            result = json.load(f)
        if result.get("version") != evaluate.RESULTS_VERSION or result.get("options") != options:
            return None
        saves = [p for p in checkpoint_files.newest_first(run_dir) if checkpoint_files.missing_files(p) is None]
        if (saves and os.path.basename(result["checkpoint"]) == os.path.basename(saves[0])
                and result["checkpoint_sha256"] == checkpoint_files.digest(saves[0])):
            return result
    except (OSError, ValueError, KeyError, AttributeError):
        pass  # a save removed while hashed (a resuming train.py tidies), a damaged file, not evaluate.py's
    return None


def checkpoint_step(run_dir):
    """Return the outer step of the newest save in ``run_dir`` (or its best/) that -rl would try first
    (0 if there is none)."""
    candidates = checkpoint_files.resume_candidates(run_dir)
    return int(candidates[0].rsplit("-", 1)[1]) if candidates else 0


class Log(object):
    """The study's log: every command with its wall time and status, kept in results/<study>/log.txt."""

    def __init__(self, path, lock_path):
        self.path, self.lock_path = path, lock_path

    def add(self, line):
        """Append ``line`` (also printed) to the log, rewritten atomically (a full disk leaves the log as it
        was) while holding the file lock ``lock_path``, so that a --report-only beside a running study
        loses none of its lines."""
        print(line, flush=True)
        with lock.exclusive(self.lock_path):
            lines = []
            if os.path.exists(self.path):
                with open(self.path) as f:
                    lines = f.read().splitlines()
            text = "\n".join(lines + [line]) + "\n"
            write_atomically(self.path, lambda f: f.write(text.encode("utf-8")))


class RunRecord(object):
    """A JSON object {run name: value} kept in a file, rewritten atomically on every change."""

    def __init__(self, path):
        self.path = path
        self.runs = {}
        if os.path.exists(path):
            with open(path) as f:
                try:
                    self.runs = json.load(f)
                except ValueError as e:
                    raise RunError("%s is damaged (%s): mend it, or remove it to start its record afresh"
                                   % (path, e)) from None

    def _set(self, run, value):
        self.runs[run] = value
        self._write()

    def discard(self, run):
        """Forget run ``run``, if it is there."""
        if self.runs.pop(run, None) is not None:
            self._write()

    def _write(self):
        text = json.dumps(self.runs, indent=1, sort_keys=True)
        write_atomically(self.path, lambda f: f.write(text.encode("utf-8")))


class Timings(RunRecord):
    """Training seconds and outer steps of every run, summed over the calls that trained it: the wall time
    of a run resumed days later excludes the pause, and the rates give the time left."""

    def add(self, run, seconds, steps):
        """Add ``seconds`` and ``steps`` to run ``run``."""
        old = self.runs.get(run, [0.0, 0])
        self._set(run, [old[0] + seconds, old[1] + steps])

    def seconds(self, run):
        """Return the training seconds of run ``run`` (0 when it has not trained)."""
        return self.runs.get(run, [0.0, 0])[0]

    def rate(self, work):
        """Return the seconds per unit of work measured over the runs of ``work`` ({run name: work of one
        of its outer steps, e.g. its minibatches}), or None when none of them has trained."""
        known = [r for r in work if r in self.runs and self.runs[r][1] > 0]
        done = sum(self.runs[r][1] * work[r] for r in known)
        return sum(self.runs[r][0] for r in known) / done if done else None


class Diverged(RunRecord):
    """The runs that diverged, each with the outer step of the checkpoint it would resume from: resumed
    there it would diverge again (its data and noise are functions of the step) unless that checkpoint
    has changed. One that diverged before its first checkpoint (step 0) would diverge again from scratch
    too: it is tried again only once it is removed from the file. A run that then trains to the end is
    removed."""

    def add(self, run, step):
        """Record that run ``run`` diverged after its checkpoint at outer step ``step``."""
        self._set(run, step)

    def at(self, run, step):
        """Return whether run ``run`` diverged after a checkpoint at outer step ``step``."""
        return self.runs.get(run) == step


def fill_section(path, section, text):
    """Rewrite the file ``path`` (atomically) with ``text`` between its lines ``<!-- SECTION -->`` and
    ``<!-- /SECTION -->``; raises ReadmeError when it lacks them, naming the file and the lines."""
    with open(path, encoding="utf-8") as f:
        head, tail = _split_section(f.read(), section, path)
    new = head + text.rstrip("\n") + "\n" + tail
    write_atomically(path, lambda f: f.write(new.encode("utf-8")))


def _split_section(text, section, path):
    """Return (``text`` up to and with the line ``<!-- SECTION -->``, from the line ``<!-- /SECTION -->`` on);
    raises ReadmeError naming ``path`` when it lacks them."""
    begin, end = "<!-- %s -->\n" % section, "<!-- /%s -->\n" % section
    head, found, rest = text.partition(begin)
    if not found or end not in rest:
        raise ReadmeError("%s has no lines %s and %s around its generated section" % (path, begin.strip(), end.strip()))
    return head + begin, end + rest.partition(end)[2]


def duration(seconds):
    """Return ``seconds`` as a short text: 45 s, 12.5 min, 3.2 h."""
    if seconds < 120:
        return "%.0f s" % seconds
    return "%.1f min" % (seconds / 60.0) if seconds < 7200 else "%.1f h" % (seconds / 3600.0)


def settle(values, digits):
    """Return ``values`` as float64 rounded to 3 decimals beyond the ``digits`` shown: one figure read from
    a float32 event and computed in float64 elsewhere (a test error in two tables) then shows one mean,
    also where that mean falls on a rounding boundary (10.195)."""
    return np.round(np.asarray(values, np.float64), digits + 3)


def cell(values, digits, sign=False):
    """Return 'mean ± std' of ``values`` with ``digits`` decimals (sample std; one value: the value alone);
    ``sign`` puts an explicit sign on the mean."""
    values = settle(values, digits)
    mean = ("%+.*f" if sign else "%.*f") % (digits, values.mean())
    return mean if len(values) == 1 else "%s ± %.*f" % (mean, digits, values.std(ddof=1))


def flatness_table(results, groups):
    """Return the Markdown flatness table of ``results`` ({run: evaluate.py --flatness JSON}): one row per
    configuration of ``groups`` ({configuration: [run names]}), mean ± std over its runs that have a
    result (Study.flatness leaves out one it could not measure up to date); none for a configuration
    without any."""
    lines = ["| configuration | seeds | test error (%) | f(x) on the batch | Hessian λ1 | λ2 | λ3 "
             "| normalised λ1 | λ2 | λ3 | ‖x − μ‖ | mean Langevin loss − f(x) |",
             "|---|" + "---:|" * 11]
    for config, names in groups.items():
        rows = [results[n] for n in names if n in results]
        if not rows:
            continue
        flat = [r["flatness"] for r in rows]
        top = [cell([f["hessian_top"][i] for f in flat], 2) for i in range(3)]
        normalised = [cell([f["hessian_top_normalised"][i] for f in flat], 2) for i in range(3)]
        lines.append("| %s | %d | %s | %s | %s | %s | %s | %s |" % (
            config, len(rows), cell([100 * r["test_error"] for r in rows], 2),
            cell([f["train_loss"] for f in flat], 4), " | ".join(top), " | ".join(normalised),
            cell([f["local_entropy"]["x_mu_norm"] for f in flat], 3),
            cell([f["local_entropy"]["inner_loss"] - f["train_loss"] for f in flat], 4, sign=True)))
    return "\n".join(lines) + "\n"


def machine():
    """Return a one-line description of this machine (CPU model, cores, Python and TensorFlow versions)."""
    model = "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    tf_version = subprocess.run([PYTHON, "-c", "import tensorflow as t; print(t.__version__)"],
                                capture_output=True, text=True).stdout.strip()
    return "%s, %d cores; Python %s, TensorFlow %s" % (model, os.cpu_count(), platform.python_version(),
                                                       tf_version)

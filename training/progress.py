"""What a person watching the run sees: a tqdm bar per effective epoch on a terminal, else plain lines.

Plain lines (a log file, a cluster job) every ``log_every`` outer steps, and at least every
``LINE_SECONDS`` of steps (a large model on a CPU takes hours for 20 outer steps):
``step 120/3900  epoch 2.46  loss 0.4123  acc 0.857  1830 img/s  left 0:12:03``; one line after each
evaluation: ``eval step 120  epoch 2.46  test loss 0.3812  acc 0.8650  error 13.50%  (best 0.8650)``.

A few steps in, one line measures the speed and says what the whole run will take (``timing: ...``), so a
run that would take a month on a CPU says so within its first hour, not after days of silence. The phases that hold
the session for minutes without a step to count (the first step, which optimises the graph before it
runs; each evaluation, with its batch-norm re-estimation) say what they are doing: a spinner with the
time elapsed on a terminal, one line before they start otherwise (a log gets lines, never redraws).
Everything is written through ``console.SafeStream``: a closed or full stream silences the run, never stops it.
"""
import contextlib
import datetime
import itertools
import sys
import threading
import time

from tqdm import tqdm

from training.console import SafeStream

# The first session runs of a process are not timed: TensorFlow prunes and optimises the graph for each new
# set of fetches, and the first step also fetches the input images for TensorBoard, so the second step sets
# up a graph again (on 2 CPU cores, over a later step's time: WRN-28-10 about 23 s and 6 s, LeNet 6 s and 0.5 s).
SETUP_STEPS = 2
# The speed line comes after this many timed steps, or sooner once the timed steps add up to
# ESTIMATE_SECONDS: a WRN-28-10 step with L = 20 takes minutes on a CPU, and five of them would keep the
# estimate back for an hour.
ESTIMATE_STEPS = 5
ESTIMATE_SECONDS = 60.0
# Plain lines come at least this often, in seconds of steps, whatever log_every.
LINE_SECONDS = 300.0
_SPIN_INTERVAL = 0.5   # seconds between redraws of a spinner
_SPINNER = "|/-\\"

FIRST_STEP = "first step: TensorFlow optimises the graph, then runs the step"


def format_seconds(seconds):
    """Return ``H:MM:SS`` for a duration in seconds (rounded; negative counts as 0)."""
    return str(datetime.timedelta(seconds=int(max(0.0, seconds) + 0.5)))


def format_duration(seconds):
    """Return ``H:MM:SS`` under two days, else days with one decimal (``33.1 days``).

    Why: an estimate of weeks is rough anyway, and ``794:24:00`` has to be divided by 24 to be read.
    """
    if seconds < 2 * 86400:
        return format_seconds(seconds)
    return "%.1f days" % (seconds / 86400.0)


def format_rate(images_per_second):
    """Return images/s as a short number: one decimal below 100 (a CPU trains WRN-28-10 at 3.6 img/s)."""
    return "%.1f" % images_per_second if images_per_second < 100 else "%.0f" % images_per_second


class Progress(object):
    """Reports training steps and evaluations, as a bar (``bar=True``) or as lines on ``stream``.

    ``steps_per_epoch`` (a float) sets the bar's length; ``total_steps`` the time-left estimate, from the
    mean time of the steps run by this process (its first ``SETUP_STEPS`` and evaluations excluded).
    """

    def __init__(self, total_steps, steps_per_epoch, images_per_step, log_every, bar=None, stream=None):
        self.stream = SafeStream(stream or sys.stderr)
        self.bar_mode = self.stream.isatty() if bar is None else bar
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.images_per_step = images_per_step
        self.log_every = log_every
        self._bar = None
        self._bar_epoch = None
        self._start_step = None      # the global step this process started from
        self._setup_time = 0.0       # its first SETUP_STEPS steps: graph optimisation included
        self._setup_steps = 0
        self._train_time = 0.0       # the steps after those
        self._steps_timed = 0
        self._estimated = False
        self._unreported = 0.0       # seconds of steps since the last step line

    def step_done(self, step, epoch, seconds, values):
        """Record one outer step (now at global ``step``, effective ``epoch``) that took ``seconds``.

        Returns images/second of this step (for the summaries).
        """
        self._time_step(step, seconds)
        rate = self.images_per_step / max(seconds, 1e-9)
        left = format_seconds((self.total_steps - step) * self.seconds_per_step()) if self._steps_timed else "?"
        if self.bar_mode:
            self._advance_bar(step, epoch, seconds, values, rate, left)
        elif self._line_due(step, seconds):
            self.line("step %d/%d  epoch %.2f  loss %.4f  acc %.3f  %s img/s  left %s"
                      % (step, self.total_steps, epoch, values["loss"], values["accuracy"], format_rate(rate),
                         left))
        if self._estimate_due(step):
            self._estimated = True
            self.line(self.estimate(step))
        return rate

    def _line_due(self, step, seconds):
        """Whether a plain step line is due at ``step``: every ``log_every`` steps, the last step, or once
        ``LINE_SECONDS`` of steps have gone by without one."""
        self._unreported += seconds
        if step % self.log_every == 0 or step == self.total_steps or self._unreported >= LINE_SECONDS:
            self._unreported = 0.0
            return True
        return False

    def _time_step(self, step, seconds):
        """Add a step's time to the mean, except the first ``SETUP_STEPS`` of this process (set-up)."""
        if self._start_step is None:
            self._start_step = step - 1
        if self._setup_steps < SETUP_STEPS:
            self._setup_time += seconds
            self._setup_steps += 1
        else:
            self._train_time += seconds
            self._steps_timed += 1

    def seconds_per_step(self):
        """Return the mean time of an outer step: of the timed ones, or of the set-up steps until one is timed."""
        if self._steps_timed:
            return self._train_time / self._steps_timed
        return self._setup_time / max(self._setup_steps, 1)

    def _estimate_due(self, step):
        """Return whether the speed line is to be printed after ``step`` (once, with steps still to go)."""
        enough = self._steps_timed >= ESTIMATE_STEPS or self._train_time >= ESTIMATE_SECONDS
        return not self._estimated and self._steps_timed > 0 and enough and step < self.total_steps

    def estimate(self, step):
        """Return the speed line: measured images/s, time per effective epoch, and the whole run's time."""
        per_step = self.seconds_per_step()
        text = ("timing: %s img/s, %s per effective epoch: about %s for all %g effective epochs"
                % (format_rate(self.images_per_step / max(per_step, 1e-9)),
                   format_duration(self.steps_per_epoch * per_step), format_duration(self.total_steps * per_step),
                   round(self.total_steps / self.steps_per_epoch, 2)))
        if self._start_step:
            text += " (%s left)" % format_duration((self.total_steps - step) * per_step)
        return text + ", plus evaluations; the first %d steps (graph set-up) took %s" % (
            self._setup_steps, format_seconds(self._setup_time))

    def _advance_bar(self, step, epoch, seconds, values, rate, left):
        """Move the epoch's bar to ``step``, which took ``seconds`` (a new bar when the step starts an
        effective epoch); close it when full, so that the evaluation which usually follows prints below it
        and it is not drawn again."""
        whole = int(epoch - 1e-9) if epoch > 0 else 0
        if self._bar is None or whole != self._bar_epoch:
            self.close()
            self._bar_epoch = whole
            # Step k is in epoch bar w when w < k / steps_per_epoch <= w + 1, as ``epoch`` counts it.
            start = int(whole * self.steps_per_epoch + 1e-9)
            length = min(int((whole + 1) * self.steps_per_epoch + 1e-9), self.total_steps) - start
            self._bar = tqdm(total=max(length, 1), initial=max(0, min(step - start - 1, length)),
                             desc="epoch %d" % (whole + 1), file=self.stream, leave=True, dynamic_ncols=True)
        self._bar.set_postfix_str("step %d  loss %.4f  acc %.3f  %s img/s  left %s"
                                  % (step, values["loss"], values["accuracy"], format_rate(rate), left),
                                  refresh=False)
        drawn = self._bar.update(1)
        if self._bar.n >= self._bar.total:
            self.close()
        elif not drawn and seconds >= self._bar.mininterval:
            # ``update`` draws at most every mininterval (0.1 s): after a step that slow the next may be as
            # slow (minutes on a CPU), and the bar must not show the previous one meanwhile. Faster steps
            # keep tqdm's throttle; a phase (an evaluation) redraws the bar before it starts.
            self._bar.refresh()

    def running_step(self):
        """Context for the session run of an outer step: the process's first says what it is doing
        (``FIRST_STEP``), since it optimises the graph before it runs; the others are silent."""
        if self._start_step is not None:
            return contextlib.nullcontext()
        return self.phase(FIRST_STEP)

    def evaluating(self, step, bn_batches=0):
        """Context for the evaluation at ``step``, preceded by a batch-norm re-estimation over
        ``bn_batches`` training batches when ``bn_batches`` > 0."""
        first = "batch-norm statistics (%d batches), then " % bn_batches if bn_batches else ""
        return self.phase("evaluating at step %d: %sthe test split" % (step, first))

    @contextlib.contextmanager
    def phase(self, text):
        """Say ``text`` while the block runs: a spinner with the time elapsed on a terminal (gone when the
        block ends), else one line before it starts."""
        if not self.bar_mode:
            self.line(text)
            yield
            return
        if self._bar is not None:
            self._bar.refresh()  # the step just done, not the last one tqdm's throttle let through
        spinner = _Spinner(text, self.stream)
        try:
            yield
        finally:
            spinner.stop()

    def evaluation(self, step, epoch, loss, accuracy, best):
        """Print the one summary line of an evaluation at ``step``."""
        self.line("eval step %d  epoch %.2f  test loss %.4f  acc %.4f  error %.2f%%  (best %.4f)"
                  % (step, epoch, loss, accuracy, 100.0 * (1.0 - accuracy), best))

    def line(self, text):
        """Print ``text`` as its own line, above the bar when there is one."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self):
        """Close the current bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _Spinner(object):
    """A terminal line ``| 0:01:23  TEXT``, redrawn by a thread until ``stop``.

    Why a thread: the session run it accompanies holds the main thread for minutes (it releases the GIL).
    The line is a tqdm bar, so it shares tqdm's lock and lines with the epoch bar, and goes when stopped.
    """

    def __init__(self, text, stream):
        self._text = text
        self._start = time.time()
        self._bar = tqdm(total=None, bar_format="{desc}", desc=self._label(0), file=stream, leave=False,
                         dynamic_ncols=True)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="progress-spinner", daemon=True)
        self._thread.start()

    def _label(self, turn):
        """The line's text at redraw ``turn``: spinner, time elapsed, what is happening."""
        return "%s %s  %s" % (_SPINNER[turn % len(_SPINNER)], format_seconds(time.time() - self._start),
                              self._text)

    def _spin(self):
        """The thread: redraw every ``_SPIN_INTERVAL`` seconds until ``stop``."""
        for turn in itertools.count(1):
            if self._done.wait(_SPIN_INTERVAL):
                return
            self._bar.set_description_str(self._label(turn))

    def stop(self):
        """Stop redrawing and remove the line."""
        self._done.set()
        self._thread.join()
        self._bar.close()

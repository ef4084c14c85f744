"""What a person watching the run sees: a tqdm bar per effective epoch on a terminal, else plain lines.

Plain lines (a log file, a cluster job) every ``log_every`` outer steps:
``step 120/3900  epoch 2.46  loss 0.4123  acc 0.857  1830 img/s  left 0:12:03``; one line after each
evaluation: ``eval step 120  epoch 2.46  test loss 0.3812  acc 0.8650  error 13.50%  (best 0.8650)``.
Everything is written through ``console.SafeStream``: a closed or full stream silences the run, never stops it.
"""
import datetime
import sys

from tqdm import tqdm

from training.console import SafeStream


def format_seconds(seconds):
    """Return ``H:MM:SS`` for a duration in seconds (rounded; negative counts as 0)."""
    return str(datetime.timedelta(seconds=int(max(0.0, seconds) + 0.5)))


class Progress(object):
    """Reports training steps and evaluations, as a bar (``bar=True``) or as lines on ``stream``.

    ``steps_per_epoch`` (a float) sets the bar's length; ``total_steps`` the time-left estimate, from the
    mean time of the steps run by this process (evaluations excluded).
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
        self._train_time = 0.0
        self._steps_timed = 0

    def step_done(self, step, epoch, seconds, values):
        """Record one outer step (now at global ``step``, effective ``epoch``) that took ``seconds``.

        Returns images/second of this step (for the summaries).
        """
        self._train_time += seconds
        self._steps_timed += 1
        rate = self.images_per_step / max(seconds, 1e-9)
        left = format_seconds((self.total_steps - step) * self._train_time / self._steps_timed)
        if self.bar_mode:
            self._advance_bar(step, epoch, values, rate, left)
        elif step % self.log_every == 0 or step == self.total_steps:
            self.line("step %d/%d  epoch %.2f  loss %.4f  acc %.3f  %.0f img/s  left %s"
                      % (step, self.total_steps, epoch, values["loss"], values["accuracy"], rate, left))
        return rate

    def _advance_bar(self, step, epoch, values, rate, left):
        whole = int(epoch - 1e-9) if epoch > 0 else 0
        if self._bar is None or whole != self._bar_epoch:
            self.close()
            self._bar_epoch = whole
            start = int(round(whole * self.steps_per_epoch))
            length = min(int(round((whole + 1) * self.steps_per_epoch)), self.total_steps) - start
            self._bar = tqdm(total=max(length, 1), initial=min(step - start - 1, length), desc="epoch %d" % (whole + 1),
                             file=self.stream, leave=True, dynamic_ncols=True)
        self._bar.update(1)
        self._bar.set_postfix_str("step %d  loss %.4f  acc %.3f  %.0f img/s  left %s"
                                  % (step, values["loss"], values["accuracy"], rate, left), refresh=False)

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

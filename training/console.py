"""What the program prints, written so that printing can never stop a save.

``python3 train.py ... 2>&1 | tee log`` and Ctrl-C: the terminal sends SIGINT to every process of the
pipeline, ``tee`` may die first, and the next write to the pipe raises BrokenPipeError. A stream that is
closed, full (``/dev/full``, a full disk under a log file) or broken must cost the run its messages, never
its final checkpoint. So every line goes through ``SafeStream``, which drops what it cannot write, and
``quiet_exit`` keeps the interpreter's own last flush from failing on a dead stream.
"""
import os
import sys

PROG = "train.py"  # how the trainer's own lines start ("train.py: error: ...")

# What writing to a dead stream raises: EPIPE, ENOSPC, EBADF (OSError) and a closed file (ValueError).
_DEAD_STREAM = (OSError, ValueError)
# A write from a signal handler that interrupted another write to the same buffer: only that write is lost.
_REENTRANT = RuntimeError


class SafeStream(object):
    """A text stream whose ``write`` and ``flush`` never raise: after the first failure of a dead stream it
    drops everything (a write that interrupted another one is dropped alone).

    Other attributes (``encoding``, ...) are those of the wrapped stream, so tqdm can draw on it.
    """

    def __init__(self, stream):
        self._stream = stream
        self.broken = False

    def write(self, text):
        if not self.broken:
            try:
                self._stream.write(text)
            except _DEAD_STREAM:
                self.broken = True
            except _REENTRANT:
                pass
        return len(text)

    def flush(self):
        if not self.broken:
            try:
                self._stream.flush()
            except _DEAD_STREAM:
                self.broken = True
            except _REENTRANT:
                pass

    def isatty(self):
        try:
            return not self.broken and self._stream.isatty()
        except _DEAD_STREAM:
            return False

    def __getattr__(self, name):
        return getattr(self._stream, name)


def say(text, stream=None):
    """Print ``text`` as one line on ``stream`` (default: stderr), flushed; never raises, not even where
    Python has no stderr (started with the descriptor closed)."""
    stream = stream or sys.stderr
    if stream is None:
        return
    out = SafeStream(stream)
    out.write(text + "\n")
    out.flush()


def quiet_exit():
    """Flush stdout and stderr now; point whichever cannot be flushed at /dev/null.

    Why: the interpreter flushes both at exit, and a failed flush of stdout there prints a traceback and
    turns the exit status into 120, hiding the status the run chose (130 after a saved stop, say).
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with the descriptor closed (``>&-``): Python has none to flush
            continue
        try:
            stream.flush()
        except _DEAD_STREAM + (_REENTRANT,):
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, stream.fileno())
                os.close(null)
            except (OSError, ValueError):
                pass

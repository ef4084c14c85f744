"""Ctrl-C and SIGTERM (cluster pre-emption) become a request to stop after the current step.

The loop checks ``requested`` between steps, saves a final checkpoint and exits cleanly. A second
signal while that is pending raises KeyboardInterrupt at once (abort without saving).

The handler only records the signal and calls ``on_request``, whose failure it ignores: an exception
raised inside a signal handler surfaces wherever the main thread happens to be (inside ``session.run``,
say) and would end the run without its final checkpoint. ``on_request`` should print through
``training.console`` anyway, which never raises.

Outside the training loop (data preparation, graph building, restoring) there is no step to finish:
Ctrl-C raises KeyboardInterrupt as Python does, and ``terminate_as_exception`` makes SIGTERM raise
``Terminated`` likewise, so that cleanup (``finally`` blocks, the run's lock) runs instead of the process
vanishing mid-download.
"""
import contextlib
import signal

from training.exits import EXIT_STATUS


class Terminated(BaseException):
    """SIGTERM arrived outside the training loop (a BaseException, like KeyboardInterrupt: not an error)."""


@contextlib.contextmanager
def terminate_as_exception():
    """Within the block, SIGTERM raises ``Terminated`` (StopRequest turns it into a stop request instead)."""
    def handle(signum, frame):
        raise Terminated()
    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopRequest(object):
    """Context manager that installs the handlers and restores the previous ones on exit."""

    def __init__(self, on_request=None):
        self.signal = None
        self._on_request = on_request
        self._previous = {}

    @property
    def requested(self):
        """Whether a stop signal arrived."""
        return self.signal is not None

    def _handle(self, signum, frame):
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        if self._on_request:
            try:
                self._on_request(signum)
            except Exception:  # a message is not worth the final checkpoint (see the module docstring)
                pass

    def __enter__(self):
        for signum in EXIT_STATUS:  # the signals that have a status of their own
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False

"""Ctrl-C, SIGTERM (cluster pre-emption) and SIGHUP (the terminal or ssh session gone) become a request to
stop after the current step.

The loop checks ``requested`` between steps, saves a final checkpoint and exits cleanly. A second
signal while that is pending raises KeyboardInterrupt (Ctrl-C) or ``Terminated`` at once (abort without
saving).

The training loop runs each step aside (``run_aside``), so that the handler runs when the signal comes,
not when the step's ``session.run`` returns. The handler only records the signal and calls
``on_request``, whose failure it ignores: an exception raised inside a signal handler surfaces wherever
the main thread happens to be (a save, say) and would end the run without its final checkpoint.
``on_request`` should print through ``training.console`` anyway, which never raises.

Outside the training loop (data preparation, graph building, restoring) there is no step to finish:
Ctrl-C raises KeyboardInterrupt as Python does, and ``terminate_as_exception`` makes SIGTERM and SIGHUP
raise ``Terminated`` likewise, so that cleanup (``finally`` blocks, the run's lock) runs instead of the
process vanishing mid-download.

A signal the process was started to ignore stays ignored (``handle``): ``nohup`` ignores SIGHUP so that a
run outlives the terminal, and a background job of a non-interactive shell ignores SIGINT.
"""
import contextlib
import os
import queue
import signal
import sys
import threading

from training.console import quiet_exit, say
from training.exits import EXIT_STATUS


# The stop signals other than Ctrl-C's, which Python already raises as KeyboardInterrupt.
TERMINATING = tuple(signum for signum in EXIT_STATUS if signum != signal.SIGINT)


class Terminated(BaseException):
    """SIGTERM or SIGHUP (``signum``) arrived outside the training loop, or a second time within it (a
    BaseException, like KeyboardInterrupt: not an error)."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def handle(signums, handler):
    """Set ``handler`` for each signal of ``signums`` that is not ignored (SIG_IGN, as ``nohup`` leaves
    SIGHUP); return {signal: its previous handler} of those set, for ``restore``."""
    return {signum: signal.signal(signum, handler) for signum in signums
            if signal.getsignal(signum) != signal.SIG_IGN}


def restore(previous):
    """Put back the handlers ``handle`` replaced."""
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _stopped(signum):
    """The exception with which stop signal ``signum`` ends the program at once (outside the training loop,
    or a second signal within it): KeyboardInterrupt for Ctrl-C, as Python's own, ``Terminated`` for the
    others (their exit status differs)."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


@contextlib.contextmanager
def terminate_as_exception():
    """Within the block, SIGTERM and SIGHUP raise ``Terminated`` (StopRequest turns them into a stop request
    instead)."""
    def raise_stopped(signum, frame):
        raise _stopped(signum)
    previous = handle(TERMINATING, raise_stopped)
    try:
        yield
    finally:
        restore(previous)


def run_stoppable(body, message):
    """Return ``body()``, a program's exit status. Ctrl-C, SIGTERM or SIGHUP during it ends it instead with
    the line ``message`` and 128 + the signal's number, after the ``finally`` blocks it was in have run.
    Either way stdout and stderr are flushed here (``quiet_exit``), so that a dead pipe (``| head``)
    cannot turn the status into the interpreter's 120 and a traceback."""
    try:
        with terminate_as_exception():
            return body()
    except (KeyboardInterrupt, Terminated) as e:
        say(message)
        return EXIT_STATUS[e.signum if isinstance(e, Terminated) else signal.SIGINT]
    finally:
        quiet_exit()


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
            raise _stopped(signum)
        self.signal = signum
        if self._on_request:
            try:
                self._on_request(signum)
            except Exception:  # a message is not worth the final checkpoint (see the module docstring)
                pass

    def __enter__(self):
        self._previous = handle(EXIT_STATUS, self._handle)  # the signals that have a status of their own
        return self

    def __exit__(self, *exc):
        restore(self._previous)
        return False


# One event per run that ``run_aside`` gave up waiting for, set once that run has returned (``end_process``).
_GIVEN_UP = []


class _Worker(object):
    """The daemon thread that runs ``run_aside``'s calls, one at a time. One for the process, started with
    the first call: a thread started per call cost about 100 µs a step on the 2-core CPU, where handing a
    call to this one costs about 20 µs (a small model's step on a GPU takes a few milliseconds)."""

    def __init__(self):
        self._calls = queue.Queue()
        self._start = threading.Lock()
        self._thread = None

    def call(self, function, args):
        """Hand ``function(*args)`` over; return (its outcome, a dict that will hold "value" or "error",
        and the Event set once it has returned)."""
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="session.run", daemon=True)
                self._thread.start()
        outcome, returned = {}, threading.Event()
        self._calls.put((function, args, outcome, returned))
        return outcome, returned

    def _serve(self):
        while True:
            function, args, outcome, returned = self._calls.get()
            try:
                outcome["value"] = function(*args)
            except BaseException as e:  # handed to the waiting thread, which raises it
                outcome["error"] = e
            finally:
                returned.set()


_WORKER = _Worker()


def run_aside(function, *args):
    """Return ``function(*args)`` (a ``session.run``), run on the worker thread while this one waits.

    Python runs signal handlers in the main thread, between bytecodes: a ``session.run`` called there holds
    a stop signal back until it returns, minutes for a WRN Entropy-SGD step on a CPU, during which Ctrl-C
    seems to do nothing. Waiting here instead, the handler runs at once: the stop request is acknowledged
    while the step goes on, and a second signal's exception leaves the wait at once. The run is then left
    to the session, whose closing (on the way out) cancels it once the operation under way ends (TF waits
    up to 30 s for it); the process must end through ``end_process``. An exception of ``function`` is
    raised here.
    """
    outcome, returned = _WORKER.call(function, args)
    try:
        returned.wait()  # a signal handler runs within it, and its exception leaves it
    except BaseException:
        _GIVEN_UP.append(returned)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def end_process(status):
    """End the process with ``status``. Should a run that ``run_aside`` gave up still be inside TensorFlow
    (a third Ctrl-C while the session's closing waited for it), the interpreter's teardown would crash
    under it (status 139): the process then ends at once, its output flushed, every ``finally`` block
    already run on the way here."""
    if not all(event.is_set() for event in _GIVEN_UP):
        quiet_exit()
        os._exit(status)
    sys.exit(status)


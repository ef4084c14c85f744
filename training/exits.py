"""train.py's exit statuses, by name: what a job scheduler or a script can tell from how a run ended.

A stopped run (Ctrl-C, SIGTERM, SIGHUP) exits with 128 + the signal's number, the shell's convention, so
that a pre-empted run is told apart from a finished one; continue it with -rl.
"""
import signal

DONE = 0  # trained to the planned step, final checkpoint and evaluation written
FAILED = 1  # one line said why: a start check, a restore, a file not written, damaged records, a lost cluster
BAD_FLAGS = 2  # a flag or setting that makes no sense (argparse's status for its own errors)
# The loss or the weights became NaN or infinite; nothing saved after the last good checkpoint. A result of
# the settings, not a fault: a sweep records it, where it would retry a FAILED run.
DIVERGED = 3
INTERRUPTED = 128 + signal.SIGINT  # Ctrl-C (130), after the final checkpoint where training had begun
TERMINATED = 128 + signal.SIGTERM  # SIGTERM (143), likewise
HUNG_UP = 128 + signal.SIGHUP  # SIGHUP (129): the terminal or ssh session the run started from went away

# The status of a stop by each signal the trainer handles (training.stop).
EXIT_STATUS = {signal.SIGINT: INTERRUPTED, signal.SIGTERM: TERMINATED, signal.SIGHUP: HUNG_UP}

# The exit statuses as train.py -h lists them.
SUMMARY = ("exit status: %d done; %d failed (one line says why); %d bad flags; %d diverged (NaN or infinite loss "
           "or weights); %d/%d/%d stopped by Ctrl-C/SIGTERM/SIGHUP, what was trained saved (continue with -rl)"
           % (DONE, FAILED, BAD_FLAGS, DIVERGED, INTERRUPTED, TERMINATED, HUNG_UP))

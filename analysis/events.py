"""Read the TensorBoard event files of training runs into NumPy series against effective epochs.

A run is a folder ``RUN_NAME`` holding ``train/`` and ``test/`` event files (what train.py writes under
``tensorboard/``); every scalar carries the run's step (its gradient evaluations). The x axis of every
comparison is the *effective epoch* (gradient evaluations / train size), which train.py logs as the train scalar
``effective_epoch``; test points are placed on it by the step they were written at.

Events are read with TensorBoard's own ``EventAccumulator``: it reads every event file of a folder in
order and drops the events a killed run wrote past its last checkpoint when the resumed run logs its
``SessionLog.START`` (train.py writes one on resume), so a resumed run reads as one clean curve.
"""
import collections
import glob
import os

import numpy as np

# TensorBoard's reader imports TensorFlow on first use; load it through the project's compat module
# first so its start-up noise is filtered as everywhere else.
import tfcompat  # noqa: F401
from tensorboard.backend.event_processing import event_accumulator

# The folders and scalar tags train.py writes (training/events.py, training/loop.py). Change them here only.
TRAIN_DIR, TEST_DIR = "train", "test"
TAG_TRAIN_LOSS = "loss"
TAG_EFFECTIVE_EPOCH = "effective_epoch"
TAG_TEST_ERROR = "error"

_EVENT_FILE_GLOB = "events.out.tfevents.*"
_GLOB_CHARS = "*?["

Series = collections.namedtuple("Series", "steps epochs values")
Series.__doc__ = "One scalar of one run: event steps, effective epochs at those steps, values (1-D arrays)."

Run = collections.namedtuple("Run", "name path test_error train_loss wall_time")
Run.__doc__ = ("One run: its name (folder name), path, test error and training loss as Series, and its "
               "wall time in seconds (first event written to last scalar).")


class AnalysisError(Exception):
    """A run folder that cannot be read as the comparison needs; the message is one line for the user."""


def _has_events(folder):
    return bool(glob.glob(os.path.join(folder, _EVENT_FILE_GLOB)))


def is_run_dir(path):
    """Return True when ``path`` holds event files in a ``train/`` or ``test/`` subfolder."""
    return any(_has_events(os.path.join(path, sub)) for sub in (TRAIN_DIR, TEST_DIR))


def find_runs(paths):
    """Return the sorted, de-duplicated run folders named by ``paths``.

    Each path is a run folder, a parent of run folders (e.g. ``tensorboard/``), or a glob of either
    (expanded here too, for shells that pass it quoted). Raises AnalysisError for a path that does not
    exist or under which no run with event files is found, so a typo is never silently skipped.
    """
    runs = set()
    for path in paths:
        matches = sorted(glob.glob(path)) if any(c in path for c in _GLOB_CHARS) else [path]
        if not matches or not all(os.path.isdir(m) for m in matches):
            raise AnalysisError("no such directory: %s" % path)
        found = []
        for match in matches:
            if is_run_dir(match):
                found.append(match)
            else:
                children = (os.path.join(match, c) for c in sorted(os.listdir(match)))
                found.extend(c for c in children if os.path.isdir(c) and is_run_dir(c))
        if not found:
            raise AnalysisError("no TensorBoard event files under %s (expected RUN/%s/%s or a folder of such runs)"
                                % (path, TRAIN_DIR, _EVENT_FILE_GLOB))
        runs.update(os.path.normpath(f) for f in found)
    return sorted(runs)


def _accumulator(run_dir, sub):
    """Return the loaded EventAccumulator of ``run_dir/sub`` keeping every scalar (no reservoir sampling)."""
    folder = os.path.join(run_dir, sub)
    if not _has_events(folder):
        raise AnalysisError("run %s has no event files in %s/" % (run_dir, sub))
    acc = event_accumulator.EventAccumulator(folder, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return acc


def _scalar(acc, tag, run_dir, sub):
    """Return the ScalarEvents of ``tag``, sorted by step; AnalysisError naming the tags present if absent."""
    tags = acc.Tags()[event_accumulator.SCALARS]
    if tag not in tags:
        raise AnalysisError("run %s has no '%s' scalar in %s/ (scalars found: %s)"
                            % (run_dir, tag, sub, ", ".join(sorted(tags)) or "none"))
    return sorted(acc.Scalars(tag), key=lambda e: e.step)


def epochs_at(steps, known_steps, known_epochs):
    """Return the effective epochs at ``steps`` from the (step, effective epoch) pairs logged in training.

    Needed because test points are written at evaluation steps, train scalars every ``log_every`` steps.
    The effective epoch is proportional to the step (a fixed number of images per step), so values are
    interpolated linearly from (0, 0) through the known points and extended past the last one by its ratio.
    """
    xs = np.concatenate([[0.0], np.asarray(known_steps, np.float64)])
    ys = np.concatenate([[0.0], np.asarray(known_epochs, np.float64)])
    steps = np.asarray(steps, np.float64)
    out = np.interp(steps, xs, ys)
    beyond = steps > xs[-1]
    if xs[-1] > 0:
        out[beyond] = steps[beyond] * (ys[-1] / xs[-1])
    return out


def _series(events, known_steps, known_epochs):
    steps = np.array([e.step for e in events], np.int64)
    values = np.array([e.value for e in events], np.float64)
    return Series(steps, epochs_at(steps, known_steps, known_epochs), values)


def load_run(run_dir):
    """Return the Run of ``run_dir``: test error and training loss against effective epochs, wall time.

    Raises AnalysisError when a folder or one of the needed tags (TAG_TEST_ERROR in test/, TAG_TRAIN_LOSS
    and TAG_EFFECTIVE_EPOCH in train/) is missing.
    """
    train, test = _accumulator(run_dir, TRAIN_DIR), _accumulator(run_dir, TEST_DIR)
    epoch_events = _scalar(train, TAG_EFFECTIVE_EPOCH, run_dir, TRAIN_DIR)
    loss_events = _scalar(train, TAG_TRAIN_LOSS, run_dir, TRAIN_DIR)
    error_events = _scalar(test, TAG_TEST_ERROR, run_dir, TEST_DIR)
    known_steps = [e.step for e in epoch_events]
    known_epochs = [e.value for e in epoch_events]
    start = min(train.FirstEventTimestamp(), test.FirstEventTimestamp())
    end = max(e.wall_time for e in epoch_events + loss_events + error_events)
    return Run(name=os.path.basename(os.path.normpath(run_dir)), path=run_dir,
               test_error=_series(error_events, known_steps, known_epochs),
               train_loss=_series(loss_events, known_steps, known_epochs),
               wall_time=end - start)


def scale_epochs(run, factor):
    """Return ``run`` with its effective epochs times ``factor``: a Parle run logs them per replica, so
    ``factor`` = its replicas puts it at the gradient evaluations of all of them."""
    return run._replace(**{field: getattr(run, field)._replace(epochs=getattr(run, field).epochs * factor)
                           for field in ("test_error", "train_loss")})

"""TensorBoard event files of a run: ``tensorboard/NAME/train`` and ``tensorboard/NAME/test``.

Scalars are written from values the loop already fetched with the train op (no extra ``session.run``),
so logging costs only the protobuf write. The step of every event is the number of gradient evaluations
made (minibatches consumed: the outer step times L for Entropy-SGD, per replica for Parle, the outer
step itself for the baselines), so that SGD and Entropy-SGD at any L overlay at equal compute in
TensorBoard (a Parle run of n replicas has made n times the evaluations in all at each step); checkpoints
keep the outer step. Every start first writes a ``SessionLog.START`` at the outer step after
the one it starts from: TensorBoard then drops the events that a killed run had written past its last
checkpoint, so curves continue without duplicates.

Why not ``tf.summary.FileWriter``: its writer thread drops events silently once the disk is full (its
C++ writer ignores failed writes, and a later flush of an empty buffer succeeds), so a run would go on
for days logging nothing. An event file is a TFRecord file of ``Event`` protos, so ``EventFile`` writes
one with TF's record writer, which raises on the failed write itself; every failure becomes a
``WriteFailed`` naming the file. A reader sees at most an incomplete last record, which it skips.
"""
import os
import socket
import time

from tfcompat import tf
from training.errors import WriteFailed

FLUSH_SECS = 10  # how stale the files may get while a run is watched live; a flush is cheap (no fsync)
FILE_VERSION = "brain.Event:2"


def event_file_name():
    """Return a new event file name: ``events.out.tfevents.<second>.<host>.<nanosecond>.<pid>``.

    Why: TensorBoard reads a folder's files in name order and drops, at a ``SessionLog.START``, the events
    before it with later steps; names must therefore sort as the runs started, also two starts in one
    second (a quick -rl), and never collide. The nanosecond clock (19 digits) sorts them; the pid keeps
    two processes apart.
    """
    now = time.time_ns()
    return "events.out.tfevents.%d.%s.%d.%d" % (now // 10 ** 9, socket.gethostname(), now, os.getpid())


class EventFile(object):
    """One event file, written as the calls come (no thread); every failure raises ``WriteFailed``."""

    def __init__(self, folder):
        self.path = os.path.join(folder, event_file_name())
        self._last_flush = time.time()
        self._failed = False
        try:
            os.makedirs(folder, exist_ok=True)
            self._writer = tf.io.TFRecordWriter(self.path)
        except (OSError, tf.errors.OpError) as e:
            raise WriteFailed("events", folder, e) from None
        self.write(tf.Event(file_version=FILE_VERSION))

    def write(self, event, flush=False):
        """Write ``event`` (its wall time set now); flush when asked or when the last flush is FLUSH_SECS old."""
        event.wall_time = time.time()
        try:
            self._writer.write(event.SerializeToString())
            if flush or event.wall_time - self._last_flush > FLUSH_SECS:
                self._writer.flush()
                self._last_flush = event.wall_time
        except tf.errors.OpError as e:
            self._failed = True
            raise WriteFailed("events", self.path, e) from None

    def close(self):
        """Flush and close the file; a file whose write failed (reported then) is closed without a word."""
        try:
            self._writer.close()
        except tf.errors.OpError as e:
            if not self._failed:
                raise WriteFailed("events", self.path, e) from None


_START = tf.SessionLog(status=tf.SessionLog.START)


def _scalars(values):
    """A Summary of ``{tag: number}``."""
    return tf.Summary(value=[tf.Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()])


class Events(object):
    """The run's two event files; ``*_scalars`` / ``train_summary`` write, ``close`` flushes and closes.

    Methods take outer steps; ``per_step`` is the gradient evaluations of one (the x axis is their count).
    ``graph``: written to the train file (TensorBoard's graph tab); ``restored_step``: the outer step the
    run starts from (0 for a fresh start), after which a ``SessionLog.START`` is written to both files.
    """

    def __init__(self, run_logdir, graph=None, restored_step=None, per_step=1):
        self.per_step = per_step
        self.train = EventFile(os.path.join(run_logdir, "train"))
        self.test = EventFile(os.path.join(run_logdir, "test"))
        if graph is not None:
            self.train.write(tf.Event(graph_def=graph.as_graph_def(add_shapes=True).SerializeToString()))
        if restored_step is not None:
            for events in (self.train, self.test):
                events.write(self._event(restored_step + 1, session_log=_START), flush=True)

    def restart_test(self, step):
        """Write a ``SessionLog.START`` at ``step`` to the test file: a run that evaluates again at the
        step it resumed from replaces the evaluation the stopped run may have written there."""
        self.test.write(self._event(step, session_log=_START), flush=True)

    def train_scalars(self, values, step):
        """Write ``{tag: number}`` to the train file at ``step``."""
        self.train.write(self._event(step, summary=_scalars(values)))

    def test_scalars(self, values, step):
        """Write ``{tag: number}`` to the test file at ``step`` and flush (evaluations are rare)."""
        self.test.write(self._event(step, summary=_scalars(values)), flush=True)

    def train_summary(self, serialized, step):
        """Write a serialised Summary (the input images) to the train file."""
        self.train.write(self._event(step, summary=tf.Summary.FromString(serialized)))

    def _event(self, step, **fields):
        """An Event at outer step ``step``, placed on the gradient-evaluation axis."""
        return tf.Event(step=step * self.per_step, **fields)

    def close(self):
        """Flush and close both files."""
        self.train.close()
        self.test.close()

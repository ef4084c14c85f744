"""TensorBoard event files of a run: ``tensorboard/NAME/train`` and ``tensorboard/NAME/test``.

Scalars are written from values the loop already fetched with the train op (no extra ``session.run``),
so logging costs only the protobuf write. Every event carries the global (outer) step. A resumed run
first writes a ``SessionLog.START`` at the step after the restored one: TensorBoard then drops the
events a killed run had written past its last checkpoint, so curves continue without duplicates.
TensorFlow's event writer writes each file under its final name and appends records; a reader sees
at most an incomplete last record, which it skips.
"""
import itertools
import os

from tfcompat import tf

FLUSH_SECS = 10  # often enough to watch live; the writer thread makes it free for the loop
_WRITERS = itertools.count()  # numbers this process's writers, for unique file names


def _file_suffix():
    """Return an event-file name suffix unique to this writer: ``.PID.N``.

    Why: TF names event files ``events.out.tfevents.<second>.<host>``, so two writers opening one
    folder within the same second (a quick -rl, or two runs of one process) would share a file.
    """
    return ".%d.%d" % (os.getpid(), next(_WRITERS))


class Events(object):
    """The run's two FileWriters; ``scalars`` / ``summary`` write, ``close`` flushes and closes."""

    def __init__(self, run_logdir, graph=None, restored_step=None):
        self.train = tf.summary.FileWriter(os.path.join(run_logdir, "train"), graph=graph, flush_secs=FLUSH_SECS,
                                           filename_suffix=_file_suffix())
        self.test = tf.summary.FileWriter(os.path.join(run_logdir, "test"), flush_secs=FLUSH_SECS,
                                          filename_suffix=_file_suffix())
        if restored_step is not None:
            start = tf.SessionLog(status=tf.SessionLog.START)
            for writer in (self.train, self.test):
                writer.add_session_log(start, global_step=restored_step + 1)

    @staticmethod
    def _scalars(writer, values, step):
        summary = tf.Summary(value=[tf.Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()])
        writer.add_summary(summary, step)

    def train_scalars(self, values, step):
        """Write ``{tag: number}`` to the train writer at ``step``."""
        self._scalars(self.train, values, step)

    def test_scalars(self, values, step):
        """Write ``{tag: number}`` to the test writer at ``step`` and flush (evaluations are rare)."""
        self._scalars(self.test, values, step)
        self.test.flush()

    def train_summary(self, serialized, step):
        """Write a serialised Summary (the input images) to the train writer."""
        self.train.add_summary(serialized, step)

    def close(self):
        """Flush and close both writers."""
        self.train.close()
        self.test.close()

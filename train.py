"""Train a model with Entropy-SGD, SGD, momentum or Adam: ``python3 train.py -h`` lists the flags.

Defaults are ``config.config_train``; checkpoints go to ``checkpoints/NAME/``, TensorBoard events to
``tensorboard/NAME/{train,test}``. Stop with Ctrl-C or SIGTERM (a final checkpoint is saved) and
continue with ``-rl`` (same flags). Exit status: 0 done, 1 error or NaN loss or weights, 2 bad flags,
130/143 stopped by Ctrl-C/SIGTERM after saving.
"""
import os
import sys
import types

from config import config_train
from data import DataError
from models import MODEL_NAMES
from tfcompat import tf
from training import checkpoints, graph, loop, schedule, settings
from training.dataset import prepare_records, record_info
from training.events import Events
from training.progress import Progress
from training.stop import StopRequest

PROG = "train.py"


class RunError(Exception):
    """A problem that ends the run (a checkpoint that cannot be restored, damaged records); its message
    is the one line main prints."""


def first_line(error):
    """Return one line of an exception's message that says what went wrong.

    TensorFlow's op errors run over many lines: "Graph execution error:", where the op was defined,
    "Node: 'NAME'", then the cause, then "[[...]]" locating the op; the cause is what the user needs.
    """
    lines = [l.strip() for l in str(getattr(error, "message", None) or error).splitlines()]
    lines = [l for l in lines if l and not l.startswith("[[")]
    nodes = [i for i, l in enumerate(lines) if l.startswith("Node:")]
    if nodes:
        lines = lines[nodes[-1] + 1:]
    return lines[0] if lines else type(error).__name__


def run_paths(s):
    """Return the run's folders: checkpoints/NAME and tensorboard/NAME."""
    return types.SimpleNamespace(ckpt=os.path.join(s.checkpoint_dir, s.run_name),
                                 logs=os.path.join(s.logdir, s.run_name))


def check_start(s, paths):
    """Return None if the run may start as asked, else the one-line reason it may not.

    A fresh start must not mix into an existing run; -rl needs a checkpoint and the same graph/stream
    settings (settings.RESUME_KEYS) as the run it continues.
    """
    latest = checkpoints.resolve(paths.ckpt) if os.path.isdir(paths.ckpt) else None
    if s.resume_latest:
        if latest is None:
            return "nothing to resume: no checkpoint in %s (start without -rl)" % paths.ckpt
        saved = checkpoints.read_settings(paths.ckpt)
        mismatch = saved and settings.resume_mismatch(saved, s)
        if mismatch:
            return "-rl needs the settings of the run it continues; changed: %s" % mismatch
    elif latest is not None:
        return "%s already holds checkpoints: continue it with -rl, or choose another -n NAME" % paths.ckpt
    if s.restore and not checkpoints.resolve(s.restore):
        return "-r %s: no checkpoint there (give a prefix like DIR/model-100, or a run directory)" % s.restore
    return None


def restore_state(sess, g, s, paths):
    """Initialise, then restore per -rl (everything) or -r (model weights); return the restored step or None.

    Raises RunError when the checkpoint does not fit the graph or cannot be read.
    """
    sess.run(g.init)
    if not (s.resume_latest or s.restore):
        return None
    path = checkpoints.resolve(paths.ckpt if s.resume_latest else s.restore)
    try:
        if not s.resume_latest:
            checkpoints.restore_subset(sess, path, g.model_vars)
            return None
        g.checkpoints.restore(sess, path)
        g.checkpoints.adopt_existing()
        best = g.checkpoints.stored_best(g.best_accuracy.op.name)
        if best is not None:
            sess.run(g.set_best, {g.best_value: best})
        return int(sess.run(g.global_step))
    except (ValueError, tf.errors.OpError) as e:
        raise RunError("cannot restore %s: %s" % (path, first_line(e))) from None


def announce(progress, s, info, paths, per_step, step, total, resumed):
    """Print the run's first line: where it starts and ends (outer steps, effective epochs), where it writes."""
    def epoch(k):
        return schedule.effective_epoch(k, s.batch_size, per_step, info.train_size)
    progress.line("%s %s: step %d of %d, effective epoch %.2f of %.2f; checkpoints %s, logs %s"
                  % ("resuming" if resumed else "starting", s.run_name, step, total, epoch(step), epoch(total),
                     paths.ckpt, paths.logs))


def train(s, info, record_dir, paths):
    """Build the graph and run the training session; return the exit status."""
    with tf.Graph().as_default() as tf_graph:
        g = graph.build(s, info, record_dir, paths.ckpt)
        with tf.Session() as sess:
            restored = restore_state(sess, g, s, paths)
            tf_graph.finalize()  # the loop adds no ops: any attempt is a bug, caught here
            step = restored or 0
            steps = loop.plan(s, info.train_size, g.per_step)
            progress = Progress(steps.total, steps.per_epoch, s.batch_size * g.per_step, s.log_every)
            announce(progress, s, info, paths, g.per_step, step, steps.total, restored is not None)
            events = Events(paths.logs, graph=tf_graph, restored_step=step)
            try:
                with StopRequest(lambda _: progress.line("stopping after this step (again to abort)")) as stop:
                    return loop.Trainer(sess, g, s, info.train_size, events, progress, stop).run()
            except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
                # Verified at conversion, so unreadable records were damaged on disk since.
                raise RunError("records in %s are damaged (%s): delete %s and run again"
                               % (record_dir, first_line(e), record_dir)) from None
            finally:
                progress.close()
                events.close()


def run(argv):
    """Parse flags, prepare the data, check the start, train; return the exit status (errors: one line)."""
    s = settings.parse_settings(argv, config_train, MODEL_NAMES)
    try:
        record_dir = prepare_records(s)
    except DataError as e:
        print(str(e), file=sys.stderr)
        return 1
    info = record_info(record_dir)
    if s.batch_size > info.train_size:
        return settings.fail(PROG, "batch_size %d exceeds the %d training examples in %s"
                             % (s.batch_size, info.train_size, record_dir), status=2)
    paths = run_paths(s)
    problem = check_start(s, paths)
    if problem:
        return settings.fail(PROG, problem)
    try:
        checkpoints.write_json(os.path.join(paths.ckpt, checkpoints.SETTINGS), vars(s))
        os.makedirs(paths.logs, exist_ok=True)
    except OSError as e:
        return settings.fail(PROG, "cannot write the run's folders (--checkpoint-dir, --logdir): %s" % e)
    try:
        return train(s, info, record_dir, paths)
    except RunError as e:
        return settings.fail(PROG, str(e))


def main(argv=None):
    """Run train.py with ``argv``; return the process exit status.

    Ctrl-C before the stop handler is installed (data preparation, graph building, restoring), or a
    second one during training, ends here: one line, status 130, and the checkpoints already saved.
    """
    try:
        return run(argv)
    except KeyboardInterrupt:
        print("%s: interrupted; checkpoints saved before now are kept" % PROG, file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Train a model with Entropy-SGD, SGD, momentum or Adam: ``python3 train.py -h`` lists the flags.

Defaults are ``config.config_train``; checkpoints go to ``checkpoints/NAME/``, TensorBoard events to
``tensorboard/NAME/{train,test}``. Stop with Ctrl-C or SIGTERM (a final checkpoint is saved) and
continue with ``-rl`` (same flags). Exit status: 0 done, 1 error or NaN loss, 2 bad flags,
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
    """Initialise, then restore per -rl (everything) or -r (model weights); return the restored step or None."""
    sess.run(g.init)
    if s.resume_latest:
        g.checkpoints.restore(sess, checkpoints.resolve(paths.ckpt))
        g.checkpoints.adopt_existing()
        return int(sess.run(g.global_step))
    if s.restore:
        checkpoints.restore_subset(sess, checkpoints.resolve(s.restore), g.model_vars)
    return None


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
            finally:
                progress.close()
                events.close()


def main(argv=None):
    """Parse flags, prepare the data, train; return the process exit status."""
    s = settings.parse_settings(argv, config_train, MODEL_NAMES)
    try:
        record_dir = prepare_records(s)
    except DataError as e:
        print(str(e), file=sys.stderr)
        return 1
    paths = run_paths(s)
    problem = check_start(s, paths)
    if problem:
        return settings.fail(PROG, problem)
    checkpoints.write_json(os.path.join(paths.ckpt, checkpoints.SETTINGS), vars(s))
    try:
        return train(s, record_info(record_dir), record_dir, paths)
    except KeyboardInterrupt:
        print("%s: aborted by a second interrupt; the last saved checkpoint is kept" % PROG, file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

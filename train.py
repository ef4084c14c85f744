"""Train a model with Entropy-SGD, Parle, SGD, momentum or Adam: ``python3 train.py -h`` lists the flags.

Defaults are ``config.config_train``; checkpoints go to ``checkpoints/NAME/``, TensorBoard events to
``tensorboard/NAME/{train,test}``. Stop with Ctrl-C or SIGTERM (a final checkpoint is saved) and
continue with ``-rl`` (same flags). Exit status: 0 done, 1 error or NaN loss or weights, 2 bad flags,
130/143 stopped by Ctrl-C/SIGTERM after saving.

One process per run: both folders are locked while it runs (training.lock). Every start first puts
right what a killed save left in the checkpoint folder (training.checkpoint_files.tidy); a start without
-rl is refused where any checkpoint is, intact or not; -rl resumes from the newest save that restores.
"""
import os
import signal
import sys
import types

from config import config_train
from data import DataError
from models import MODEL_NAMES
from tfcompat import first_line, tf
from training import checkpoint_files, checkpoints, cluster, devices, graph, loop, schedule, settings
from training.checkpoints import Checkpoints
from training.console import quiet_exit, say
from training.dataset import prepare_records, record_info
from training.errors import RunError
from training.events import Events
from training.lock import locked
from training.progress import Progress
from training.stop import EXIT_STATUS, StopRequest, Terminated, terminate_as_exception

PROG = "train.py"


def run_paths(s):
    """Return the run's folders: checkpoints/NAME and tensorboard/NAME."""
    return types.SimpleNamespace(ckpt=os.path.join(s.checkpoint_dir, s.run_name),
                                 logs=os.path.join(s.logdir, s.run_name))


def tidy(s, paths):
    """Put right what a killed save left in the run's checkpoint folder and its best/ (say what, in one line)."""
    removed, adopted = [], []
    for folder, keep in ((paths.ckpt, s.keep_checkpoints), (os.path.join(paths.ckpt, checkpoint_files.BEST), 1)):
        names, steps = checkpoint_files.tidy(folder, keep, checkpoints.readable)
        removed += [os.path.relpath(os.path.join(folder, n), paths.ckpt) for n in names]
        adopted += [os.path.relpath(checkpoint_files.prefix(folder, k), paths.ckpt) for k in steps]
    if removed or adopted:
        say("%s: an interrupted save left files in %s: %s" % (PROG, paths.ckpt, "; ".join(
            (["removed " + ", ".join(sorted(removed))] if removed else []) +
            (["listed the complete %s in its state file" % ", ".join(adopted)] if adopted else []))))


def check_start(s, paths):
    """Return None if the run may start as asked, else the one-line reason it may not.

    A fresh start must not mix into an existing run: any checkpoint file, intact or not, refuses it. -rl
    needs a save to try and the same graph/stream settings (settings.RESUME_KEYS) as the run it continues.
    """
    if s.resume_latest:
        if not checkpoint_files.resume_candidates(paths.ckpt):
            return "nothing to resume: no checkpoint in %s (start without -rl)" % paths.ckpt
        try:
            saved = checkpoints.read_settings(paths.ckpt)
        except ValueError as e:
            return str(e)
        mismatch = saved and settings.resume_mismatch(saved, s)
        if mismatch:
            return "-rl needs the settings of the run it continues; changed: %s" % mismatch
    elif checkpoint_files.holds_checkpoints(paths.ckpt):
        return "%s already holds checkpoints: continue it with -rl, or choose another -n NAME" % paths.ckpt
    if s.restore and not checkpoints.resolve(s.restore):
        return "-r %s: no checkpoint there (give a prefix like DIR/model-100, or a run directory)" % s.restore
    return None


def start_replicas(sess, g):
    """Parle: set every replica to the reference weights (a fresh start, or -r); else nothing."""
    if g.sync_replicas is not None:
        sess.run(g.sync_replicas)


def restore_state(sess, g, ckpts, s, paths, replicas_saved=True):
    """Initialise, then restore per -rl (everything, from the run's Checkpoints ``ckpts``) or -r (model
    weights); return the restored step or None.

    ``replicas_saved``: False for a cluster's chief, whose Parle replica is not in the checkpoint (only
    what lives on the ps is): after -rl it starts again from the restored x̄.
    Raises RunError when no checkpoint restores (-rl) or the one named does not fit the graph (-r).
    """
    sess.run(g.init)
    if s.restore:
        path = checkpoints.resolve(s.restore)
        try:
            checkpoints.restore_subset(sess, path, g.model_vars)
        except (ValueError, tf.errors.OpError) as e:
            raise RunError("cannot restore %s: %s" % (path, first_line(e))) from None
    if not s.resume_latest:
        start_replicas(sess, g)
        return None
    path, skipped = ckpts.restore_newest(sess)
    tried = checkpoints.skipped_text(skipped, paths.ckpt)
    if path is None:
        raise RunError("cannot resume: no checkpoint in %s restores: %s. Start afresh under another -n NAME"
                       % (paths.ckpt, tried))
    if skipped:
        say("%s: skipped %s; resuming from %s" % (PROG, tried, os.path.relpath(path, paths.ckpt)))
    ckpts.adopt_existing()
    restore_best(sess, g, ckpts)
    if not replicas_saved:
        start_replicas(sess, g)
    return int(sess.run(g.global_step))


def restore_best(sess, g, ckpts):
    """Set the best accuracy so far from the best checkpoint (see ``Checkpoints.stored_best``); when that
    cannot be read, keep the value the restored checkpoint holds and say so."""
    try:
        best = ckpts.stored_best(g.best_accuracy.op.name)
    except (ValueError, tf.errors.OpError) as e:
        say("%s: cannot read the best accuracy from %s (%s): keeping %.4f from the restored checkpoint"
            % (PROG, ckpts.best_dir, first_line(e), sess.run(g.best_accuracy)))
        return
    if best is not None:
        sess.run(g.set_best, {g.best_value: best})


def announce(progress, s, info, paths, per_step, step, total, resumed):
    """Print the run's first line: where it starts and ends (outer steps, effective epochs), where it writes."""
    def epoch(k):
        return schedule.effective_epoch(k, schedule.examples_per_batch(s), per_step, info.train_size)
    progress.line("%s %s: step %d of %d, effective epoch %.2f of %.2f; checkpoints %s, logs %s"
                  % ("resuming" if resumed else "starting", s.run_name, step, total, epoch(step), epoch(total),
                     paths.ckpt, paths.logs))


def _session(g, cfg, server):
    """The training session: local, or on this cluster worker's server (talking to the ps and itself)."""
    if cfg is None:
        return tf.Session(config=devices.session_config(g.num_devices))
    return tf.Session(server.target, config=cluster.session_config(cfg))


def train(s, info, record_dir, paths, cfg=None, server=None, heartbeat=None):
    """Build the graph and run the training session; return the exit status.

    ``cfg``, ``server``, ``heartbeat``: this process's place in a cluster (Parle on TF's distributed
    runtime), its server and the call that tells the ps it is alive; None for a single process.
    """
    with tf.Graph().as_default() as tf_graph:
        g = graph.build(s, info, record_dir, cfg)
        if cfg is not None and not cfg.is_chief:
            return train_non_chief(s, info, g, tf_graph, cfg, server, heartbeat)
        ckpts = Checkpoints(paths.ckpt, g.saved_vars, s.keep_checkpoints)
        with _session(g, cfg, server) as sess:
            restored = restore_state(sess, g, ckpts, s, paths, replicas_saved=cfg is None)
            tf_graph.finalize()  # the loop adds no ops: any attempt is a bug, caught here
            step = restored or 0
            steps = loop.plan(s, info.train_size, g.per_step)
            progress = Progress(steps.total, steps.per_epoch, g.images_per_step, s.log_every)
            announce(progress, s, info, paths, g.per_step, step, steps.total, restored is not None)
            events = Events(paths.logs, graph=tf_graph, restored_step=step, per_step=g.per_step)
            try:
                with StopRequest(lambda _: progress.line("stopping after this step (again to abort)")) as stop:
                    return loop.Trainer(sess, g, ckpts, s, info.train_size, events, progress, stop, heartbeat).run()
            finally:
                progress.close()
                events.close()


def train_non_chief(s, info, g, tf_graph, cfg, server, heartbeat):
    """A cluster worker other than the chief: wait for the chief to initialise (or restore) the ps,
    start this worker's replica from x̄, train it until the chief's step count is done."""
    sess = cluster.wait_for_chief(cfg, server, s.cluster_timeout)
    with sess:
        sess.run(g.local_init)
        start_replicas(sess, g)
        tf_graph.finalize()
        steps = loop.plan(s, info.train_size, g.per_step)
        progress = Progress(steps.total, steps.per_epoch, g.images_per_step, s.log_every)
        progress.line("worker %d: training replica %d of %d from step %d"
                      % (cfg.task_index, cfg.task_index, cfg.num_workers, sess.run(g.global_step)))
        with StopRequest() as stop:
            return loop.run_worker(sess, g, s, info.train_size, progress, stop, heartbeat)


def serve_ps(s, cfg):
    """The ps task: hold the shared variables until every worker is done; return the exit status."""
    server = cluster.start_server(cfg)
    say("ps task 0 serving at %s for %d workers" % (cfg.address, cfg.num_workers))
    cluster.serve_until_done(cfg, server, s.ps_idle_timeout)
    say("ps: every worker is done")
    return 0


def train_worker(s, info, record_dir, paths, cfg):
    """A cluster worker: start its server, reach the ps, train, and tell the ps when done."""
    server = cluster.start_server(cfg)
    cluster.wait_for_ps(cfg, server, s.cluster_timeout)
    with cluster.WorkerSignals(cfg, server, timeout=s.cluster_timeout) as signals:
        try:
            return train(s, info, record_dir, paths, cfg, server, signals.alive)
        except tf.errors.UnavailableError as e:
            raise RunError("lost the cluster (%s): restart this worker to rejoin" % first_line(e)) from None
        finally:
            signals.done()


def run(argv):
    """Parse flags, lock the run's folders, prepare the data, check the start, train; return the exit
    status (errors: one line)."""
    s = settings.parse_settings(argv, config_train, MODEL_NAMES)
    try:
        cfg = cluster.load(s.cluster, s.job_name, s.task_index)
        if cfg is not None and cfg.job_name == "ps":
            return serve_ps(s, cfg)
    except cluster.ClusterError as e:
        return settings.fail(PROG, str(e))
    if cfg is not None:
        if s.optimizer != "parle":
            return settings.fail(PROG, "--cluster runs Parle, one replica per worker: add -opt parle", status=2)
        s.replicas = cfg.num_workers
    paths = run_paths(s)
    writer = cfg is None or cfg.is_chief  # only the chief writes the run's folders (the others may share them)
    try:
        with locked([paths.ckpt, paths.logs] if writer else []):
            return prepare_and_train(s, cfg, paths, writer)
    except (RunError, cluster.ClusterError) as e:
        return settings.fail(PROG, str(e))


def prepare_and_train(s, cfg, paths, writer):
    """The run once its folders are locked (``writer``: this process writes them): data, start checks,
    settings record, training. Returns the exit status; raises RunError."""
    try:
        record_dir = prepare_records(s)
    except DataError as e:
        return settings.fail(PROG, str(e))
    info = record_info(record_dir)
    if schedule.examples_per_batch(s) > info.train_size:
        per_device = " x %d devices" % s.gpus if s.gpus > 1 else ""
        return settings.fail(PROG, "batch_size %d%s exceeds the %d training examples in %s"
                             % (s.batch_size, per_device, info.train_size, record_dir), status=2)
    if writer:
        try:
            tidy(s, paths)
            problem = check_start(s, paths)
            if problem:
                return settings.fail(PROG, problem)
            checkpoints.write_json(os.path.join(paths.ckpt, checkpoints.SETTINGS), vars(s))
        except OSError as e:
            return settings.fail(PROG, "cannot write the run's folders (--checkpoint-dir, --logdir): %s" % e)
    if cfg is not None:
        return train_worker(s, info, record_dir, paths, cfg)
    return train(s, info, record_dir, paths)


def main(argv=None):
    """Run train.py with ``argv``; return the process exit status.

    Ctrl-C or SIGTERM before the stop handler is installed (data preparation, graph building, restoring),
    or a second one during training, ends here: one line, status 130 or 143, the checkpoints already saved.
    """
    try:
        with terminate_as_exception():
            return run(argv)
    except (KeyboardInterrupt, Terminated) as e:
        say("%s: interrupted; checkpoints saved before now are kept" % PROG)
        return EXIT_STATUS[signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT]
    finally:
        quiet_exit()


if __name__ == "__main__":
    sys.exit(main())

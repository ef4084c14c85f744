"""One process's part of a run, from its settings to its exit status (training.exits).

The process is the ps of a cluster (it serves the shared variables until every worker is done), a
cluster worker, or a single process. A worker or a single process locks the run's folders (only the
chief writes them: the others may share them), prepares the data, and, where it writes, tidies the
checkpoint folder, checks that the start may proceed and records the settings; then trains
(training.sessions). Every problem ends it with one line ``train.py: error: ...``.
"""
from data import DataError
from tfcompat import first_line, tf
from training import cluster, exits, run_folders, schedule, sessions, settings
from training.console import PROG, say
from training.dataset import prepare_records, record_info
from training.errors import RunError
from training.lock import locked


def run(s):
    """Run this process's part of the run of settings ``s``; return its exit status."""
    try:
        cfg = cluster.load(s.cluster, s.job_name, s.task_index)
        if cfg is not None and cfg.job_name == "ps":
            return _serve_ps(s, cfg)
    except cluster.ClusterError as e:
        return settings.fail(PROG, str(e), exits.FAILED)
    if cfg is not None:
        if s.optimizer != "parle":
            return settings.fail(PROG, "--cluster runs Parle, one replica per worker: add -opt parle",
                                 exits.BAD_FLAGS)
        s.replicas = cfg.num_workers  # one replica per worker: what settings.json records and -rl checks
    folders = run_folders.run_folders(s)
    writer = cfg is None or cfg.is_chief  # only the chief writes the run's folders (the others may share them)
    try:
        with locked([folders.ckpt, folders.logs] if writer else []):
            return _prepare_and_train(s, cfg, folders, writer)
    except (RunError, cluster.ClusterError) as e:
        return settings.fail(PROG, str(e), exits.FAILED)
    except tf.errors.OpError as e:  # outside the loop (building, restoring: no step to save), out of memory, say
        return settings.fail(PROG, "TensorFlow failed (%s)" % first_line(e), exits.FAILED)


def _serve_ps(s, cfg):
    """The ps task: hold the shared variables until every worker is done; return the exit status."""
    server = cluster.start_server(cfg)
    say("ps task 0 serving at %s for %d workers" % (cfg.address, cfg.num_workers))
    cluster.serve_until_done(cfg, server, s.ps_idle_timeout)
    say("ps: every worker is done")
    return exits.DONE


def _prepare_and_train(s, cfg, folders, writer):
    """The run once its folders are locked (``writer``: this process writes them): data, start checks,
    settings record, training. Returns the exit status; raises RunError."""
    try:
        record_dir = prepare_records(s)
    except DataError as e:
        return settings.fail(PROG, str(e), exits.FAILED)
    info = record_info(record_dir)
    if schedule.examples_per_batch(s) > info.train_size:
        per_device = " x %d devices" % s.gpus if s.gpus > 1 else ""
        return settings.fail(PROG, "batch_size %d%s exceeds the %d training examples in %s"
                             % (s.batch_size, per_device, info.train_size, record_dir), exits.BAD_FLAGS)
    if writer:
        try:
            note = run_folders.tidy(s, folders)
            if note:
                say("%s: %s" % (PROG, note))
            problem = run_folders.check_start(s, folders)
            if problem:
                return settings.fail(PROG, problem, exits.FAILED)
            run_folders.record_settings(s, folders)
        except OSError as e:
            return settings.fail(PROG, "cannot write the run's folders (--checkpoint-dir, --logdir): %s" % e,
                                 exits.FAILED)
    if cfg is None:
        return sessions.train_chief(s, info, record_dir, folders)
    return _train_on_cluster(s, info, record_dir, folders, cfg)


def _train_on_cluster(s, info, record_dir, folders, cfg):
    """A cluster worker: start its server, reach the ps, train (the chief, or another worker), and tell
    the ps when done."""
    server = cluster.start_server(cfg)
    cluster.wait_for_ps(cfg, server, s.cluster_timeout)
    with cluster.WorkerSignals(cfg, server, timeout=s.cluster_timeout) as signals:
        try:
            if cfg.is_chief:
                return sessions.train_chief(s, info, record_dir, folders, cfg, server, signals.alive)
            return sessions.train_other_worker(s, info, record_dir, cfg, server, signals.alive)
        except tf.errors.UnavailableError as e:
            raise RunError("lost the cluster (%s): restart this worker to rejoin" % first_line(e)) from None
        finally:
            signals.done()

"""A process's training session: it builds the graph, opens the session and hands over to its loop.

The chief (or a single process) restores, trains, evaluates and saves (``train_chief``); a cluster's
other workers train their replica only (``train_other_worker``). Checkpoints are created here, after the
graph is built and before it is finalised, and only where they are written.
"""
from tfcompat import tf
from training import cluster, devices, graph, loop
from training.checkpoints import Checkpoints
from training.events import Events
from training.progress import Progress
from training.restore import restore_state, start_replicas
from training.stop import StopRequest


def train_chief(s, info, record_dir, folders, cfg=None, server=None, heartbeat=None):
    """Build the graph, restore or initialise it, train it to the planned step; return the exit status.

    ``folders``: the run's RunFolders. ``cfg``, ``server``, ``heartbeat``: this chief's place in a cluster
    (Parle on TF's distributed runtime), its server and the call that tells the ps it is alive; None
    for a single process. Raises RunError when the start cannot be restored.
    """
    with tf.Graph().as_default() as tf_graph:
        g = graph.build(s, info, record_dir, cfg)
        ckpts = Checkpoints(folders.ckpt, g.saved_vars, s.keep_checkpoints)
        with _session(g, cfg, server) as sess:
            restored = restore_state(sess, g, ckpts, s, folders, replicas_saved=cfg is None)
            tf_graph.finalize()  # the loop adds no ops: any attempt is a bug, caught here
            step = restored or 0
            steps = loop.plan(s, info.train_size, g.per_step)
            progress = _progress(s, g, steps)
            _announce(progress, s, steps, folders, step, restored is not None)
            events = Events(folders.logs, graph=tf_graph, restored_step=step, per_step=g.per_step)
            try:
                with StopRequest(lambda _: _stopping(progress)) as stop:
                    return loop.Trainer(sess, g, s, ckpts, steps, events, progress, stop, heartbeat).run()
            finally:
                progress.close()
                events.close()


def train_other_worker(s, info, record_dir, cfg, server, heartbeat):
    """A cluster worker other than the chief: wait for the chief to initialise (or restore) the ps,
    start this worker's replica from x̄, train it until the chief's step count is done; return the exit
    status."""
    with tf.Graph().as_default() as tf_graph:
        g = graph.build(s, info, record_dir, cfg)
        with cluster.wait_for_chief(cfg, server, s.cluster_timeout) as sess:
            sess.run(g.local_init)
            start_replicas(sess, g)
            tf_graph.finalize()
            steps = loop.plan(s, info.train_size, g.per_step)
            progress = _progress(s, g, steps)
            progress.line("worker %d: training replica %d of %d from step %d"
                          % (cfg.task_index, cfg.task_index, cfg.num_workers, sess.run(g.global_step)))
            with StopRequest(lambda _: _stopping(progress)) as stop:
                return loop.run_worker(sess, g, s, steps, progress, stop, heartbeat)


def _stopping(progress):
    """Acknowledge a stop signal, at once (the step runs aside: training.stop.run_aside)."""
    progress.line("stopping after this step (again to abort)")


def _session(g, cfg, server):
    """The training session: local, or on this cluster worker's server (talking to the ps and itself)."""
    if cfg is None:
        return tf.Session(config=devices.session_config(g.num_devices))
    return tf.Session(server.target, config=cluster.session_config(cfg))


def _progress(s, g, steps):
    """The run's progress reporter for the StepPlan ``steps``."""
    return Progress(steps.total, steps.per_epoch, g.images_per_step, s.log_every)


def _announce(progress, s, steps, folders, step, resumed):
    """Print the run's first line: where it starts and ends (outer steps, effective epochs), where it writes."""
    progress.line("%s %s: step %d of %d, effective epoch %.2f of %.2f; checkpoints %s, logs %s"
                  % ("resuming" if resumed else "starting", s.run_name, step, steps.total, steps.epoch(step),
                     steps.epoch(steps.total), folders.ckpt, folders.logs))

"""A training session's variables at its start: initialised, then restored per -rl (everything) or -r
(the model's weights), and Parle's replicas set to the reference x̄."""
import os

from tfcompat import first_line, tf
from training import checkpoints
from training.console import PROG, say
from training.errors import RunError


def restore_state(sess, g, ckpts, s, folders, replicas_saved=True):
    """Initialise the TrainingGraph ``g``'s variables, then restore per -rl or -r from the run's
    Checkpoints ``ckpts`` (in ``folders``); return the restored step, or None for a fresh start.

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
    tried = checkpoints.skipped_text(skipped, folders.ckpt)
    if path is None:
        raise RunError("cannot resume: no checkpoint in %s restores: %s. Start afresh under another -n NAME"
                       % (folders.ckpt, tried))
    if skipped:
        say("%s: skipped %s; resuming from %s" % (PROG, tried, os.path.relpath(path, folders.ckpt)))
    ckpts.adopt_existing()
    _restore_best(sess, g, ckpts)
    if not replicas_saved:
        start_replicas(sess, g)
    return int(sess.run(g.global_step))


def start_replicas(sess, g):
    """Parle: set every replica to the reference weights (a fresh start, or -r); else nothing."""
    if g.sync_replicas is not None:
        sess.run(g.sync_replicas)


def _restore_best(sess, g, ckpts):
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

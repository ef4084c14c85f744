"""Checkpoints of a run: periodic (the last few), ``best/`` by test accuracy, and a settings record.

Layout of ``checkpoints/NAME/``::

    checkpoint, model-STEP.index, model-STEP.data-*    periodic and final saves (tf.train.Saver)
    best/checkpoint, best/model-STEP.*                 the save with the highest test accuracy so far
    settings.json                                      the settings of the run (for -rl checks, evaluate.py)
    .lock                                              held by the process running the run (training.lock)

Never corrupting the previous good checkpoint: TF's V2 Saver writes the tensors under a temporary
prefix and renames them into place when complete, and only then rewrites the ``checkpoint`` state file,
itself with an atomic write-and-rename; old files are deleted after that. So the state file always
names complete files, and a run killed in the middle of a save still restores its previous checkpoint.
The data stream position is not saved: it is a function of the global step (see ``graph``).
What a save killed half-way leaves is put right at the next start (``checkpoint_files.tidy``), and -rl
resumes from the newest save that restores (``restore_newest``), so a damaged newest file costs only
the steps since the save before it.
"""
import json
import os

from tfcompat import first_line, tf
from training import checkpoint_files
from training.atomic_file import write_atomically
from training.checkpoint_files import BEST, PREFIX
from training.errors import WriteFailed

SETTINGS = "settings.json"


class Checkpoints(object):
    """Savers of one run directory: ``save`` (periodic/final, keeps ``keep``) and ``save_best``.

    Create it after the graph is built and before it is finalised (its Savers add ops), with every
    variable to save (``TrainingGraph.saved_vars``).
    """

    def __init__(self, run_dir, var_list, keep):
        self.run_dir = run_dir
        self.best_dir = os.path.join(run_dir, BEST)
        self._periodic = tf.train.Saver(var_list, max_to_keep=keep, save_relative_paths=True)
        self._best = tf.train.Saver(var_list, max_to_keep=1, save_relative_paths=True)
        self._last_step = None

    def latest(self):
        """Return the prefix of the run's newest complete checkpoint, or None if there is none."""
        return tf.train.latest_checkpoint(self.run_dir)

    def adopt_existing(self):
        """Make both Savers aware of the checkpoints already on disk, so that across -rl ``keep`` holds
        and a new best save deletes the previous one (a fresh Saver only deletes what it wrote itself)."""
        for saver, folder in ((self._periodic, self.run_dir), (self._best, self.best_dir)):
            state = tf.train.get_checkpoint_state(folder)
            if state is not None:
                saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths))

    def stored_best(self, name):
        """Return the value of variable ``name`` in the best checkpoint, or None when there is none.

        Why: the best save holds its own test accuracy, written atomically with it, whereas the newest
        periodic save may predate it (a run killed between the two); -rl takes the best value from here.
        Raises ValueError or a TF error when the best checkpoint cannot be read.
        """
        prefix = resolve(self.best_dir)
        return None if prefix is None else read_tensor(tf.train.load_checkpoint(prefix), name)

    def save(self, sess, step, again=False):
        """Save all variables as ``model-STEP``; return the prefix written, or None when this step is saved
        already and not ``again`` (a stop signal after a periodic save).

        Raises WriteFailed when the files cannot be written (a full disk): the previous saves are intact."""
        if step == self._last_step and not again:
            return None
        path = self._write(self._periodic, self.run_dir, sess, step)
        self._last_step = step
        return path

    def save_best(self, sess, step):
        """Save all variables as ``best/model-STEP``, replacing the previous best; return the prefix.

        Raises WriteFailed as ``save`` does."""
        return self._write(self._best, self.best_dir, sess, step)

    @staticmethod
    def _write(saver, folder, sess, step):
        try:
            os.makedirs(folder, exist_ok=True)
            return saver.save(sess, os.path.join(folder, PREFIX), global_step=step, write_meta_graph=False)
        except (OSError, tf.errors.OpError) as e:
            raise WriteFailed("checkpoint", checkpoint_files.prefix(folder, step), e) from None

    def restore(self, sess, path):
        """Restore every saved variable from checkpoint prefix ``path``."""
        self._periodic.restore(sess, path)
        self._last_step = None

    def restore_newest(self, sess):
        """Restore the newest save of the run that restores (``checkpoint_files.resume_candidates``: best/'s
        included); return ``first_restorable``'s (prefix or None, [(prefix, why)] of the newer ones skipped).

        A failed restore assigns nothing: the restore op fails before its assigns."""
        return first_restorable(checkpoint_files.resume_candidates(self.run_dir),
                                lambda path: self.restore(sess, path))


def first_restorable(paths, restore):
    """Call ``restore(path)`` for each checkpoint prefix of ``paths`` in turn until one succeeds.

    Returns (that prefix, or None when none did; [(prefix, why it failed, in one line)] of those tried
    before). A prefix whose files are missing is not tried. ``restore`` raises ValueError or a TF error.
    """
    skipped = []
    for path in paths:
        why = checkpoint_files.missing_files(path)
        if why is None:
            try:
                restore(path)
                return path, skipped
            except (ValueError, tf.errors.OpError) as e:
                why = first_line(e)
        skipped.append((path, why))
    return None, skipped


def skipped_text(skipped, relative_to):
    """One phrase listing ``first_restorable``'s skipped saves: ``model-94 (why); best/model-90 (why)``."""
    return "; ".join("%s (%s)" % (os.path.relpath(path, relative_to), why) for path, why in skipped)


def readable(path):
    """Return whether every tensor of checkpoint ``path`` reads back (``read_all``)."""
    try:
        read_all(path)
    except (ValueError, tf.errors.OpError):
        return False
    return True


def read_all(path):
    """Read every tensor of checkpoint ``path`` (each read checks its CRC); raise ValueError or a TF error
    at the first that cannot be read. Returns nothing: it exists to find a damaged checkpoint before use."""
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
        read_tensor(reader, name)


def read_tensor(reader, name):
    """Return tensor ``name`` of a checkpoint reader (``tf.train.load_checkpoint``); raise ValueError with
    the reason in one line when its bytes cannot be read (the reader raises bare IndexError, RuntimeError...)."""
    try:
        return reader.get_tensor(name)
    except Exception as e:
        raise ValueError(first_line(e)) from None


def resolve(path):
    """Return the checkpoint prefix that ``path`` names, or None.

    ``path`` may be a prefix (``.../model-100``) or a directory holding a ``checkpoint`` state file
    (a run directory gives its newest periodic save; ``.../best`` the best one).
    """
    if os.path.isdir(path):
        return tf.train.latest_checkpoint(path)
    return path if os.path.exists(path + ".index") else None


def restore_subset(sess, path, var_list):
    """Restore the variables of ``var_list`` that checkpoint ``path`` holds; return how many were restored.

    Used by -r (start from another run's weights) and by evaluate.py (a checkpoint holds optimizer slots
    too, which an evaluation graph lacks). Raises ValueError when a variable is missing or of another shape.
    """
    stored = dict(tf.train.list_variables(path))
    missing = [v.op.name for v in var_list if v.op.name not in stored]
    if missing:
        raise ValueError("checkpoint %s lacks %d model variables (e.g. %s): another model or size?"
                         % (path, len(missing), missing[0]))
    wrong = [v.op.name for v in var_list if list(stored[v.op.name]) != v.shape.as_list()]
    if wrong:
        raise ValueError("checkpoint %s holds %s with another shape: another model or size?" % (path, wrong[0]))
    tf.train.Saver(var_list).restore(sess, path)
    return len(var_list)


def write_json(path, obj):
    """Write ``obj`` as JSON to ``path``, making its folder, never as a partial file (``write_atomically``)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    text = json.dumps(obj, indent=1, sort_keys=True)
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def read_settings(run_dir):
    """Return the settings dict saved in ``run_dir`` (or its parent, for ``best/``), or None.

    Raises ValueError, with a one-line message saying what to do, when the file cannot be parsed (a
    partial copy)."""
    for folder in (run_dir, os.path.dirname(os.path.normpath(run_dir))):
        path = os.path.join(folder, SETTINGS)
        if os.path.exists(path):
            with open(path) as f:
                try:
                    return json.load(f)
                except ValueError as e:
                    raise ValueError("%s is damaged (%s): put back a good copy, or delete it to go on "
                                     "without the run's recorded settings" % (path, e)) from None
    return None

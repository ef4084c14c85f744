"""The run's folders, ``checkpoints/NAME`` and ``tensorboard/NAME``: where they are, putting right what a
killed save left in them, whether a start may proceed, and the settings record.

Every start first tidies the checkpoint folder (training.checkpoint_files.tidy); a start without -rl is
refused where any checkpoint is, intact or not; -rl needs a save to try and the settings of the run it
continues.
"""
import dataclasses
import os

from training import checkpoint_files, checkpoints, settings


@dataclasses.dataclass(frozen=True)
class RunFolders:
    """Where a run writes."""
    ckpt: str  # its checkpoints and settings record: CHECKPOINT_DIR/NAME
    logs: str  # its TensorBoard events: LOGDIR/NAME


def run_folders(s):
    """Return the RunFolders of settings ``s``."""
    return RunFolders(ckpt=os.path.join(s.checkpoint_dir, s.run_name), logs=os.path.join(s.logdir, s.run_name))


def tidy(s, folders):
    """Put right what a killed save left in the run's checkpoint folder and its best/; return what was
    done, in one line, or None when there was nothing to do."""
    removed, adopted = [], []
    for folder, keep in ((folders.ckpt, s.keep_checkpoints),
                         (os.path.join(folders.ckpt, checkpoint_files.BEST), 1)):
        names, steps = checkpoint_files.tidy(folder, keep, checkpoints.readable)
        removed += [os.path.relpath(os.path.join(folder, n), folders.ckpt) for n in names]
        adopted += [os.path.relpath(checkpoint_files.prefix(folder, k), folders.ckpt) for k in steps]
    if not (removed or adopted):
        return None
    return "an interrupted save left files in %s: %s" % (folders.ckpt, "; ".join(
        (["removed " + ", ".join(sorted(removed))] if removed else []) +
        (["listed the complete %s in its state file" % ", ".join(adopted)] if adopted else [])))


def check_start(s, folders):
    """Return None if the run may start as asked, else the one-line reason it may not.

    A fresh start must not mix into an existing run: any checkpoint file, intact or not, refuses it. -rl
    needs a save to try and the same graph/stream settings (RESUME in training.schema) as the run it continues.
    """
    if s.resume_latest:
        if not checkpoint_files.resume_candidates(folders.ckpt):
            return "nothing to resume: no checkpoint in %s (start without -rl)" % folders.ckpt
        try:
            saved = checkpoints.read_settings(folders.ckpt)
        except ValueError as e:
            return str(e)
        mismatch = saved and settings.resume_mismatch(saved, s)
        if mismatch:
            return "-rl needs the settings of the run it continues; changed: %s" % mismatch
    elif checkpoint_files.holds_checkpoints(folders.ckpt):
        return "%s already holds checkpoints: continue it with -rl, or choose another -n NAME" % folders.ckpt
    if s.restore and not checkpoints.resolve(s.restore):
        return "-r %s: no checkpoint there (give a prefix like DIR/model-100, or a run directory)" % s.restore
    return None


def record_settings(s, folders):
    """Write the run's settings to ``checkpoints/NAME/settings.json`` (for -rl's checks and evaluate.py)."""
    checkpoints.write_json(os.path.join(folders.ckpt, checkpoints.SETTINGS), vars(s))

"""The files of a run's checkpoints on disk: which saves are there, and what a killed save left behind.

``tf.train.Saver.save`` (V2 format, one shard) goes in four moves: it writes ``model-STEP.index`` and
``model-STEP.data-00000-of-00001`` under temporary names (``*.tempstate<digits>``) and renames them; it
rewrites the state file ``checkpoint`` through ``checkpoint.tmp<hex>``; it deletes the oldest save beyond
``keep``. A process killed between two moves (kill -9, a power cut) leaves, in that order: temporary
files; a complete save that the state file does not list yet; a save beyond ``keep`` that it lists no
more. ``tidy`` removes the first, adopts the second (lists it, as the killed save would have, and removes
what that save would have deleted) and removes the third. It touches only those files, and deletes no
save it cannot prove superseded: a save is adopted only once every tensor of it has been read back, and
without a readable state file nothing listed can be superseded, so nothing complete is removed.

A save is complete when its index and every data shard are there (``missing_files``); whether its bytes
are intact shows only when it is read (``Checkpoints.restore_newest``, ``checkpoints.read_all``).
"""
import collections
import glob
import hashlib
import os
import re

from tfcompat import tf

PREFIX = "model"
BEST = "best"
STATE = "checkpoint"
_SAVE_FILE = re.compile(r"^%s-(\d+)\.(?:index|data-\d{5}-of-\d{5})$" % PREFIX)
# TF's temporary names (tensor files, the state file) and training.atomic_file's for settings.json.
_TEMPORARY = re.compile(r"\.tempstate\d+$|^%s\.tmp[0-9a-f]+$|^settings\.json\.tmp\d+$" % STATE)

Save = collections.namedtuple("Save", "step files complete")
Save.__doc__ = "One step's checkpoint files in a folder (names, sorted) and whether they make a whole save."


def prefix(folder, step):
    """The checkpoint prefix of ``step`` in ``folder``: ``folder/model-STEP``."""
    return os.path.join(folder, "%s-%d" % (PREFIX, step))


def saves_on_disk(folder):
    """Return {step: Save} of the checkpoint files in ``folder`` (empty when it does not exist)."""
    names = collections.defaultdict(list)
    for name in _names(folder):
        match = _SAVE_FILE.match(name)
        if match:
            names[int(match.group(1))].append(name)
    return {step: Save(step, sorted(files), missing_files(prefix(folder, step)) is None)
            for step, files in names.items()}


def listed_steps(folder):
    """Return the steps of the saves the state file of ``folder`` lists, oldest first, or None when it is
    missing or unreadable (as TF treats it)."""
    state = tf.train.get_checkpoint_state(folder) if os.path.isdir(folder) else None
    if state is None:
        return None
    steps = []
    for path in list(state.all_model_checkpoint_paths) + [state.model_checkpoint_path]:
        match = re.match(r"^%s-(\d+)$" % PREFIX, os.path.basename(path))
        if match and int(match.group(1)) not in steps:
            steps.append(int(match.group(1)))
    return steps


def holds_checkpoints(run_dir):
    """Return whether ``run_dir`` or its ``best/`` holds any checkpoint file or state file, intact or not."""
    return any(name == STATE or _SAVE_FILE.match(name)
               for folder in (run_dir, os.path.join(run_dir, BEST)) for name in _names(folder))


def newest_first(folder):
    """Return the prefixes of the saves in ``folder`` worth trying to restore, newest step first: those
    the state file lists (even with files missing: ``missing_files`` says why they fail) and any other
    with an index."""
    steps = set(listed_steps(folder) or []) | {s.step for s in saves_on_disk(folder).values()
                                               if "%s-%d.index" % (PREFIX, s.step) in s.files}
    return [prefix(folder, step) for step in sorted(steps, reverse=True)]


def resume_candidates(run_dir):
    """Return the saves -rl may resume from, newest step first: the periodic ones and ``best/``'s (a
    whole save too; a run killed after its first evaluation but before its first periodic save has no
    other), the periodic one first at equal steps."""
    saves = newest_first(run_dir) + newest_first(os.path.join(run_dir, BEST))
    return sorted(saves, key=lambda path: -int(path.rsplit("-", 1)[1]))


def _shards(path):
    """Return the data shards of checkpoint prefix ``path`` on disk, in name order."""
    return sorted(glob.glob(glob.escape(path) + ".data-?????-of-?????"))


def missing_files(path):
    """Return why checkpoint prefix ``path`` cannot be restored for want of files, or None if they are there."""
    if not os.path.isfile(path + ".index"):
        return "its .index file is missing"
    shards = [re.search(r"-of-(\d{5})$", name) for name in _shards(path)]
    if not shards or len(shards) != int(shards[0].group(1)):
        return "its .data file is missing"
    return None


def digest(path):
    """Return the SHA-256 of the files of the complete save ``path`` (its index, then its data shards in
    name order): it changes when any saved tensor does, so a result recorded with it names its model."""
    sha = hashlib.sha256()
    for name in [path + ".index"] + _shards(path):
        with open(name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha.update(chunk)
    return sha.hexdigest()


def tidy(folder, keep, readable):
    """Put right what a killed save left in ``folder`` (see the module docstring); return the names of
    the files removed and the steps adopted into the state file.

    ``readable(prefix)`` says whether every tensor of a save reads back: an unlisted save newer than the
    listed ones is adopted when it does, and removed (a killed save's wreck) when it does not.
    """
    removed = [name for name in _names(folder) if _TEMPORARY.search(name)]
    saves = saves_on_disk(folder)
    state = listed_steps(folder)
    adopted = []
    if state is None:  # no state file: nothing is known superseded, every complete save stays
        kept = [s.step for s in saves.values() if s.complete]
    else:
        listed = [step for step in state if step in saves]
        newest = max(listed, default=-1)
        adopted = [s.step for s in sorted(saves.values()) if s.complete and s.step > newest
                   and readable(prefix(folder, s.step))]
        kept = sorted(listed + adopted)[-keep:] if adopted else listed
        adopted = [step for step in adopted if step in kept]
        if adopted:
            tf.train.update_checkpoint_state(os.path.abspath(folder), os.path.basename(prefix(folder, kept[-1])),
                                             [os.path.basename(prefix(folder, step)) for step in kept])
    removed += [name for s in saves.values() if s.step not in kept for name in s.files]
    for name in removed:
        os.remove(os.path.join(folder, name))
    return removed, adopted


def _names(folder):
    """The names of the plain files in ``folder`` ([] when it does not exist)."""
    try:
        return [e.name for e in os.scandir(folder) if e.is_file()]
    except FileNotFoundError:
        return []

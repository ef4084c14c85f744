"""From nothing (or a mirror, or a file on disk) to a complete, verified record folder.

A source is read and checked before anything is written. A download waits in a folder of this
process (``fetch.unvalidated_downloads``) until then: if its content fails, it is removed before the
``DataError`` is raised, and the message says so; only a download that passed is kept in the record
folder, where a later run reuses it. A file the user named with ``--archive``, Debian's package
folder and files the user put in the data dir are only ever read.

One process at a time prepares a dataset in a data dir (``lock_path``): several runs started at once on
fresh records do not write the same files; the first converts while the others wait, saying so, and then
find the records complete.
"""
import contextlib
import os

from data import cifar, fetch, idx, records
from data.datasets import DATASETS
from data.errors import DataError
from training import lock
from training.console import say


def _conversion_line(name, record_dir, reason):
    """Return the line that announces a conversion: a first one (``reason`` empty), or one that replaces
    records found incomplete or damaged for ``reason`` (``records.incomplete_reason``), so that a user
    who sees a run convert again knows why."""
    if not reason:
        return f"{name}: converting to TFRecords in {record_dir} (once: later runs read them)"
    return f"{name}: the records in {record_dir} are incomplete or damaged ({reason}): converting them again"


def lock_path(data_dir, name):
    """Return the file whose lock a process holds while it prepares dataset ``name`` in ``data_dir``."""
    # Beside the record folder, not in it: users are told to delete that folder (damaged records), and
    # deleting it while a run holds the lock would let the next run lock a new file in a new folder and
    # convert alongside the holder.
    return os.path.join(data_dir, f".{name}.lock")


@contextlib.contextmanager
def _turn(name, data_dir, record_dir, progress):
    """Hold the lock of dataset ``name`` in ``data_dir`` (``lock_path``) for the block, waiting for the
    process that holds it, with a line saying so when ``progress``; yields whether it holds it. Where the
    lock file cannot be made (a read-only data dir, shared with prepared records), complete records are
    read without it: this process cannot change them. Raises DataError when it cannot be made and the
    records are incomplete."""
    def waiting(holder):
        if progress:
            say(f"{name}: waiting for {holder} to finish preparing {record_dir}")

    path = lock_path(data_dir, name)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(lock.exclusive(path, waiting))
            held = True
        except OSError as e:
            if records.incomplete_reason(record_dir, name) is not None:
                raise DataError(f"Could not lock {path} ({e}). Choose a writable --data-dir.") from None
            held = False
        yield held


def _kept_source(info, record_dir):
    """Return where a validated download of the dataset's source is kept for later runs: the CIFAR
    archive in the record folder, or the record folder itself for the IDX files (MNIST, Fashion-MNIST)."""
    return os.path.join(record_dir, info.archive) if info.archive else record_dir


def _cifar_archive(info, record_dir, downloads, url, archive, md5, progress):
    """Return (the path of a checked CIFAR archive, [that path] if this run downloaded it, else []).

    The archive is ``archive`` as given, the one an earlier run kept in ``record_dir``, or else a
    download from ``url`` (default: the official host) into the folder ``downloads``. The MD5 checked
    is ``md5`` when given, else the official one, except for a mirror without ``md5`` (a mirror may
    repack the archive; its gzip stream is still checked, and its content by the reader).
    """
    expected = md5 or (None if url else info.md5)
    if archive is not None:
        return fetch.verify_local(archive, expected, what="archive"), []
    kept = _kept_source(info, record_dir)
    if fetch.reusable(kept, expected):
        return kept, []
    # Named as the full command: train.py has no --url/--archive of its own and points here too.
    advice = ("This machine may not reach the host: download the archive elsewhere and run "
              f"`.venv/bin/python -m data --dataset {info.name} --data-dir {os.path.dirname(record_dir)} "
              "--archive PATH`, or "
              f"`... --url URL` with a mirror (http, https or file) of {info.archive}.")
    path = fetch.fetch(url or info.url, os.path.join(downloads, info.archive), expected, progress, advice)
    return path, [path]


def _locate(info, data_dir, record_dir, downloads, url, archive, md5, progress):
    """Return (the dataset's source: a CIFAR archive or a folder of its four IDX files, the paths of the
    files of it this run downloaded into ``downloads``)."""
    if info.idx is not None:
        if md5 is not None:
            raise DataError(f"--md5 applies to the CIFAR archives only: the four {info.name} files are "
                            "always checked against their published MD5s. Leave --md5 out.")
        return idx.locate(info.name, info.idx, record_dir, data_dir, downloads, archive, url, progress)
    return _cifar_archive(info, record_dir, downloads, url, archive, md5, progress)


def _read(info, source, record_dir):
    """Return ({'train': (images, labels), 'test': (...)}, class names) read from ``source`` and checked
    (``record_dir``: where the advice of an error says to put the files)."""
    if info.idx is not None:
        help_text = idx.advice(info.name, info.idx, record_dir)
        splits = {s: idx.read_split(source, s, help_text) for s in records.SPLITS}
        classes = list(info.idx.classes)
    else:
        splits, classes = cifar.read_cifar(source, info.name, info.top_dir)
    records.check_splits(info.name, splits, len(classes))
    return splits, classes


def _content_error(error, source, downloaded, kept):
    """Return the DataError to raise for ``error``, a failure of the source's content. What this run
    downloaded (``downloaded``) goes with its download folder as the error leaves it, and the message
    says so. ``kept`` (``_kept_source``; None with --archive) is left alone, but a later run takes it
    before any --url, so when it is the source the message says to delete it."""
    if downloaded:
        names = ", ".join(os.path.basename(path) for path in downloaded)
        return DataError(f"{error} The download ({names}) has been removed, so no later run will use it.")
    if source == kept:
        return DataError(f"{error} {source} was kept by an earlier run (or put there by hand) and is used "
                         "before any --url: delete it and run again.")
    return error


def _read_source(info, data_dir, record_dir, url, archive, md5, progress):
    """Return the checked splits and class names of the dataset's source, keeping in ``record_dir``
    what this run downloaded only once it has passed."""
    kept = None if archive is not None else _kept_source(info, record_dir)
    with fetch.unvalidated_downloads(record_dir) as downloads:
        source, downloaded = _locate(info, data_dir, record_dir, downloads, url, archive, md5, progress)
        try:
            splits, classes = _read(info, source, record_dir)
        except DataError as e:
            raise _content_error(e, source, downloaded, kept) from None
        fetch.keep(downloaded, record_dir)
    return splits, classes


def _prepare_locked(name, data_dir, record_dir, url, archive, md5, progress):
    """``prepare`` once the dataset's lock is held: return ``record_dir`` read through, or converted."""
    reason = records.incomplete_reason(record_dir, name)
    if reason is None:
        records.verify(record_dir)
        return record_dir
    if progress:
        say(_conversion_line(name, record_dir, reason))
    try:
        os.makedirs(record_dir, exist_ok=True)
    except OSError as e:
        raise DataError(f"Could not create the folder {record_dir} ({e}). Choose a writable "
                        "--data-dir.") from None
    splits, classes = _read_source(DATASETS[name], data_dir, record_dir, url, archive, md5, progress)
    return records.write_records(record_dir, name, splits, classes, progress)


def prepare(name, data_dir, url=None, archive=None, md5=None, progress=True):
    """Make sure ``data_dir/name`` holds complete TFRecords of dataset ``name``; return that folder.

    Returns once a finished conversion there has been read through (``records.verify``: damaged
    records end in a DataError saying to delete the folder). Otherwise fetches (``url``: a mirror;
    ``archive``: a file already on disk, for MNIST and Fashion-MNIST a folder of the IDX files), verifies,
    and converts. All of it holds the dataset's lock, waited for when another process has it (a line
    says so when ``progress``, as does one for a conversion). Raises ``DataError`` with a message for the
    user on any failure.
    """
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}: choose one of {', '.join(DATASETS)}.")
    record_dir = os.path.join(data_dir, name)
    with _turn(name, data_dir, record_dir, progress) as locked:
        if locked:  # no conversion under way then: any temporary is a dead one's
            records.remove_temporaries(record_dir)
        return _prepare_locked(name, data_dir, record_dir, url, archive, md5, progress)

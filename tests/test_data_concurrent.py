"""Processes preparing one dataset at the same time take turns (data.prepare holds the dataset's lock), and
the temporaries of a conversion killed outright are removed by the next. Real processes of ``python -m
data``; the overlap is made by holding the lock in the test while they start, not by timing."""
import errno
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from data import DataError, prepare, records
from data.datasets import DATASETS, IDX_FILES
from data.prepare import lock_path
from data_fixtures import files_under, read_records, write_idx
from train_fixtures import REPO
from training import lock

NAME = "fashion-mnist"
RECORD_FILES = ["labels.txt", "meta.json", "test.tfrecord", "train.tfrecord"]
IDX_NAMES = sorted(name for pair in IDX_FILES.values() for name in pair)

# A conversion killed with SIGKILL once its training split is written, before it renames it.
KILLED_CONVERSION = """
import os, signal, sys
from data import prepare, records
write_split = records._write_split

def write_then_die(path, *args):
    write_split(path, *args)
    os.kill(os.getpid(), signal.SIGKILL)

records._write_split = write_then_die
prepare(sys.argv[1], sys.argv[2], progress=False)
"""


def _write_source(folder):
    """Write the four IDX files of a small random dataset into ``folder``; return its splits as records
    hold them: {'train': (images uint8 [N, 28, 28, 1], labels), 'test': ...}."""
    rng = np.random.default_rng(7)
    os.makedirs(folder, exist_ok=True)
    splits = {split: (rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, n))
              for split, n in (("train", 60), ("test", 20))}
    for split, (images, labels) in splits.items():
        write_idx(str(folder), *IDX_FILES[split], images[..., 0], labels)
    return splits


def _assert_records_equal(record_dir, splits):
    """The records read back (independently of the converter) are ``splits``; every record reads back."""
    for split, (images, labels) in splits.items():
        read_images, read_labels = read_records(os.path.join(record_dir, f"{split}.tfrecord"))[:2]
        np.testing.assert_array_equal(read_images, images)
        np.testing.assert_array_equal(read_labels, labels)
    records.verify(record_dir)


def _start_preparing(data_dir, source):
    """Start ``python -m data`` on the IDX files in ``source``; stderr unbuffered, for ``_stderr_until``."""
    return subprocess.Popen([sys.executable, "-m", "data", "--dataset", NAME, "--data-dir", str(data_dir),
                             "--archive", str(source)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=0)


def _stderr_until(process, text, timeout=120):
    """Return what ``process`` writes on stderr up to ``text`` included; fail if it has not within
    ``timeout`` seconds or it ends first."""
    seen, deadline = b"", time.monotonic() + timeout
    while text.encode() not in seen:
        ready, _, _ = select.select([process.stderr], [], [], max(0.0, deadline - time.monotonic()))
        chunk = process.stderr.read(4096) if ready else None
        if not chunk:
            pytest.fail(f"no {text!r} on stderr ({'ended' if ready else 'timed out'}): {seen.decode()}")
        seen += chunk
    return seen.decode()


def test_runs_started_together_on_fresh_records_take_turns_and_both_succeed(tmp_path):
    splits = _write_source(tmp_path / "source")
    data_dir = tmp_path / "datasets"
    record_dir = str(data_dir / NAME)
    waiting = (rf"^{NAME}: waiting for process {os.getpid()} on {re.escape(socket.gethostname())} since "
               rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d \(.+\) to finish preparing {re.escape(record_dir)}$")
    with lock.exclusive(lock_path(str(data_dir), NAME)):      # the test holds it: both wait, then race
        runs = [_start_preparing(data_dir, tmp_path / "source") for _ in range(2)]
        starts = [_stderr_until(run, f"to finish preparing {record_dir}\n") for run in runs]
    for start in starts:
        assert re.search(waiting, start, re.M), start
    ends = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], ends
    assert [out.decode() for out, _ in ends] == [record_dir + "\n"] * 2
    # One converted; the other, its turn come, found the records complete and read them through.
    conversions = [start + err.decode() for start, (_, err) in zip(starts, ends)]
    assert sorted("converting to TFRecords" in text for text in conversions) == [False, True], conversions
    assert files_under(data_dir) == [f".{NAME}.lock"] + [f"{NAME}/{name}" for name in RECORD_FILES]
    _assert_records_equal(record_dir, splits)


@pytest.mark.parametrize("then", ["converted by the next run", "completed without removing it"])
def test_temporaries_of_a_conversion_killed_outright_are_removed_by_the_next(tmp_path, then):
    data_dir = tmp_path / "datasets"
    record_dir = str(data_dir / NAME)
    splits = _write_source(record_dir)                  # the IDX files, where a user puts them
    killed = subprocess.run([sys.executable, "-c", KILLED_CONVERSION, NAME, str(data_dir)], cwd=REPO,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL
    left = [name for name in files_under(record_dir) if name not in IDX_NAMES]
    assert len(left) == 1 and left[0].startswith(".train.tfrecord.") and left[0].endswith(".tmp"), left
    assert os.path.getsize(os.path.join(record_dir, left[0])) > 0
    stamps = {}
    if then == "completed without removing it":   # as conversions before the lock did: the leftover stays beside
        records.write_records(record_dir, NAME, splits, list(DATASETS[NAME].idx.classes), progress=False)
        stamps = {name: os.stat(os.path.join(record_dir, name)).st_mtime_ns for name in RECORD_FILES}
        assert left[0] in files_under(record_dir)
    assert prepare(NAME, str(data_dir), progress=False) == record_dir    # the dead holder's lock is free
    assert files_under(record_dir) == sorted(IDX_NAMES + RECORD_FILES)
    if stamps:                                          # complete: swept, not converted again
        assert stamps == {name: os.stat(os.path.join(record_dir, name)).st_mtime_ns for name in RECORD_FILES}
    _assert_records_equal(record_dir, splits)


def test_a_read_only_data_dir_serves_its_complete_records_without_the_lock(tmp_path, monkeypatch):
    # A shared data dir of prepared records, mounted read-only: no lock file can be made there, and none is
    # needed to read. Incomplete records there cannot be converted: one line says what to do.
    data_dir = tmp_path / "datasets"
    record_dir = str(data_dir / NAME)
    splits = _write_source(tmp_path / "source")
    records.write_records(record_dir, NAME, splits, list(DATASETS[NAME].idx.classes), progress=False)

    def read_only(path, on_wait=None):
        raise OSError(errno.EROFS, "Read-only file system", path)
    monkeypatch.setattr(lock, "exclusive", read_only)
    other = os.path.join(record_dir, ".train.tfrecord.1.tmp")  # maybe a conversion of a process that can lock
    open(other, "wb").close()
    assert prepare(NAME, str(data_dir), progress=False) == record_dir
    assert os.path.exists(other)  # not removed without the lock
    _assert_records_equal(record_dir, splits)
    os.remove(os.path.join(record_dir, "meta.json"))
    path = lock_path(str(data_dir), NAME)
    with pytest.raises(DataError) as e:
        prepare(NAME, str(data_dir), progress=False)
    assert str(e.value) == ("Could not lock %s ([Errno 30] Read-only file system: '%s'). Choose a writable "
                            "--data-dir." % (path, path))

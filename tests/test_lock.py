"""training.lock: the run folder's lock in a folder shared by a group (the file's mode, another user's file);
``exclusive``, the lock waited for, between real processes."""
import json
import os
import signal
import socket
import stat
import subprocess
import sys

import pytest

from training import lock
from training.errors import RunError
from train_fixtures import REPO


def test_the_lock_file_takes_the_umask_so_a_group_can_take_it_later(tmp_path):
    old = os.umask(0o002)
    try:
        held = lock.FolderLock(str(tmp_path / "run"))
        held.acquire()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(held.path).st_mode) == 0o664
    held.release()


def test_another_users_lock_file_is_locked_read_only_and_still_excludes(tmp_path, monkeypatch):
    # The file exists, written by another user (here: every write refused, as to them); no run holds it.
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / lock.LOCK).write_text('{"pid": 1}')
    real_open = os.open

    def as_another_user(path, flags, *mode):
        if flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *mode)

    monkeypatch.setattr(os, "open", as_another_user)
    first = lock.FolderLock(str(folder))
    first.acquire()
    with pytest.raises(RunError, match="is in use by"):
        lock.FolderLock(str(folder)).acquire()
    first.release()
    again = lock.FolderLock(str(folder))
    again.acquire()  # released: free again
    again.release()


def test_a_lock_file_removed_as_it_is_locked_is_given_up_for_the_one_there_now(tmp_path, monkeypatch):
    # Right after this process opens .lock, the run that created the folder ends and removes both.
    folder = tmp_path / "run"
    real_open, opened = lock._open, []

    def removed_once_open(path):
        fd = real_open(path)
        if not opened:
            os.remove(path)
            os.rmdir(os.path.dirname(path))
        opened.append(path)
        return fd

    monkeypatch.setattr(lock, "_open", removed_once_open)
    held = lock.FolderLock(str(folder))
    held.acquire()
    assert len(opened) == 2 and (folder / lock.LOCK).exists()
    with pytest.raises(RunError, match="is in use by"):  # a third process finds the lock held
        lock.FolderLock(str(folder)).acquire()
    held.release()


def _holding(path, then):
    """Start a process that takes ``exclusive(path)``, or waits for it, says "held" on stdout once it holds
    it, then runs the Python statement ``then``; its waiting line (``on_wait``) goes to stdout too."""
    code = ("import signal, sys, time\nfrom training import lock\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"  # even where started with it ignored
            "with lock.exclusive(sys.argv[1], lambda holder: print('waiting for', holder, flush=True)):\n"
            "    print('held', flush=True)\n    %s\n" % then)
    return subprocess.Popen([sys.executable, "-c", code, path], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_exclusive_waits_for_the_process_that_holds_it_naming_it_until_it_dies(tmp_path):
    path = str(tmp_path / "new" / "x.lock")
    holder = _holding(path, "time.sleep(600)")
    try:
        assert holder.stdout.readline() == "held\n"
        named = []

        def kill_it(description):  # called only while the lock is held: the wait ends with the holder
            named.append(description)
            holder.send_signal(signal.SIGKILL)

        with lock.exclusive(path, on_wait=kill_it):
            assert json.loads(open(path).read())["pid"] == os.getpid()   # the record names this holder now
    finally:
        holder.kill()
        holder.wait()
    assert holder.returncode == -signal.SIGKILL
    assert len(named) == 1 and named[0].startswith("process %d on %s since " % (holder.pid, socket.gethostname()))
    assert named[0].endswith("(-c %s)" % path)
    with lock.exclusive(path, on_wait=named.append):  # released: taken at once, nobody to wait for
        pass
    assert len(named) == 1


def test_ctrl_c_ends_the_wait_for_exclusive(tmp_path):
    path = str(tmp_path / "x.lock")
    with lock.exclusive(path):
        waiter = _holding(path, "pass")
        try:
            assert waiter.stdout.readline().startswith("waiting for process %d " % os.getpid())
            waiter.send_signal(signal.SIGINT)
            out, err = waiter.communicate(timeout=60)  # with the lock still held here
        finally:
            waiter.kill()
    assert waiter.returncode == -signal.SIGINT and "KeyboardInterrupt" in err and "held" not in out

"""training.lock: the run folder's lock in a folder shared by a group (the file's mode, another user's file)."""
import os
import stat

import pytest

from training import lock
from training.errors import RunError


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

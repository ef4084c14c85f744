"""One process per run folder: a lock that the OS releases when its process ends, kill -9 included.

Two runs started with the same ``-n`` would otherwise write the same checkpoints, ``settings.json`` and
event files, and the second would silently take the first one's results. The lock is ``flock`` on the
file ``.lock`` in the folder, which names its holder (pid, host, start time, command line) so that the
process refused can say who holds it. The file stays when the run ends (removing it would let a third
process lock a file no one else sees); a folder that the lock itself created and that holds nothing
else when the run ends is removed, so a refused start leaves no empty run behind; a process that opened
the file just before that locks the file at the path again, not the removed one.

In a folder shared by a group, the file takes the umask's mode like every file of the run (0664 under
umask 002), and another user's lock file that this one cannot write is locked through a read-only
descriptor (``flock`` needs no write access): the run goes ahead, its holder record unwritten.

``exclusive`` is the same lock taken by waiting instead of refusing: for files that processes take turns
to change (a dataset being prepared), where the second should wait for the first, not fail.
"""
import contextlib
import fcntl
import functools
import json
import os
import socket
import sys
import time

from training.errors import RunError

LOCK = ".lock"
RUN_FOLDERS = "the run's folders (--checkpoint-dir, --logdir)"
RUN_ADVICE = "wait for that run to end or stop it, or choose another -n NAME"


class FolderLock(object):
    """The lock of one folder: ``acquire`` (or raise RunError naming the holder), ``release``. ``what``
    names the folder and ``advice`` says what to do when it is busy, in those errors."""

    def __init__(self, folder, what=RUN_FOLDERS, advice=RUN_ADVICE):
        self.folder, self.what, self.advice = folder, what, advice
        self.path = os.path.join(folder, LOCK)
        self._fd = None
        self._created = False

    def acquire(self):
        """Take the lock without waiting; raise RunError when another process holds it or the folder
        cannot be written."""
        try:
            self._fd, self._created = _lock(self.path, self._take_now)
        except OSError as e:
            raise RunError("cannot write %s: %s" % (self.what, e)) from None
        _record_holder(self._fd)

    def _take_now(self, fd):
        """Lock the open lock file ``fd`` at once, or raise RunError naming the process that holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError("%s is in use by %s: %s" % (self.folder, _describe(_read(fd)), self.advice)) from None

    def release(self):
        """Let the lock go (and remove the folder when the lock created it and it holds nothing else)."""
        if self._fd is None:
            return
        try:
            if self._created and os.listdir(self.folder) == [LOCK]:
                os.remove(self.path)
                os.rmdir(self.folder)
        except OSError:  # the folder went away or became read-only meanwhile: nothing to tidy
            pass
        os.close(self._fd)
        self._fd = None


def _lock(path, take):
    """Open the lock file ``path`` (making its folder) and lock it with ``take(fd)``, which waits or
    raises; return (its descriptor, whether the folder was made). Raises OSError when the file cannot be
    opened or locked."""
    folder = os.path.dirname(os.path.abspath(path))
    while True:
        made = not os.path.isdir(folder)
        os.makedirs(folder, exist_ok=True)
        fd = _open(path)
        try:
            take(fd)
        except BaseException:  # refused, or Ctrl-C while waiting: the descriptor goes with the attempt
            os.close(fd)
            raise
        if _is_current(fd, path):
            return fd, made
        os.close(fd)  # its holder removed it meanwhile: lock the file there now


def _open(path):
    """Open (creating it, mode as the umask allows) the lock file ``path``; read-only when it is another
    user's that this one cannot write."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY)


def _is_current(fd, path):
    """Whether the open file ``fd`` is still the file at ``path``. A holder that created the folder removes
    the file and the folder as it ends: a process that opened the file just before then locks a file no
    one else can see, and must lock the one at ``path`` instead."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _record_holder(fd):
    """Write into the locked file ``fd`` who holds it (pid, host, start time, command line), for the
    process refused or waiting to name."""
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                 "command": " ".join(sys.argv)}).encode())
    except OSError:  # a full disk, another user's file locked read-only: the lock holds without its record
        pass


def _read(fd):
    """The holder's record in the lock file, or {} when it cannot be read (being written, say)."""
    try:
        return json.loads(os.pread(fd, 1 << 16, 0).decode())
    except (OSError, ValueError):
        return {}


def _describe(holder):
    """One phrase naming the holder of a lock from its record."""
    if "pid" not in holder:
        return "another process"
    return "process %s on %s since %s (%s)" % (holder["pid"], holder.get("host", "?"), holder.get("started", "?"),
                                              holder.get("command", "?"))


@contextlib.contextmanager
def locked(folders, what=RUN_FOLDERS, advice=RUN_ADVICE):
    """Hold the locks of ``folders`` (in order; one folder named twice, as when --logdir is
    --checkpoint-dir, is locked once) for the block; raises RunError as ``FolderLock.acquire``."""
    with contextlib.ExitStack() as stack:
        for folder in dict.fromkeys(os.path.realpath(f) for f in folders):
            lock = FolderLock(folder, what, advice)
            lock.acquire()
            stack.callback(lock.release)
        yield


def _wait(fd, on_wait):
    """Lock the open lock file ``fd``, waiting while another process holds it; ``on_wait`` is called first,
    with the phrase naming that process (``_describe``), when there is one to wait for."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if on_wait is not None:
            on_wait(_describe(_read(fd)))
        fcntl.flock(fd, fcntl.LOCK_EX)


@contextlib.contextmanager
def exclusive(path, on_wait=None):
    """Hold an exclusive lock on the file ``path`` (made when missing, its folder too) for the block,
    waiting as long as another process holds it, so that processes changing the same files take turns.

    ``on_wait(holder)``, when given, is called before waiting, with the phrase naming the process waited
    for ("process 123 on host since ... (command)", or "another process" when its record is unreadable).
    The OS releases the lock when its holder ends, kill -9 included. The file stays afterwards; one removed
    while a process waits on it (its folder deleted) is given up for the file at ``path`` then. Ctrl-C (or
    a signal handler's exception) ends the wait with its exception; raises OSError when the file cannot be
    opened or locked.
    """
    fd, _ = _lock(path, functools.partial(_wait, on_wait=on_wait))
    try:
        _record_holder(fd)
        yield
    finally:
        os.close(fd)

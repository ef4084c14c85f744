"""Writing a file so that its readers find the old one or the whole new one, never a part of it:
``settings.json``, ``--json`` results, a study's log, timings, README and figures."""
import contextlib
import os


def write_atomically(path, write, tmp=None):
    """Call ``write(binary file)`` on a temporary file next to ``path`` (with the mode any new file gets),
    bring it to the disk, then rename it to ``path``: the old file or the whole new one, even after a
    power cut. The temporary is removed on any failure, Ctrl-C included. It is ``tmp`` when given (the
    name a caller's sweep of killed writers' temporaries looks for), else ``PATH.tmpPID``."""
    tmp = tmp or "%s.tmp%d" % (path, os.getpid())
    try:
        with contextlib.suppress(FileNotFoundError):  # another process's of the same pid, killed: not its mode
            os.remove(tmp)
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

"""Download a file, check it, and only then give it its final name.

A download goes to a temporary name beside the destination; it is renamed only once its length
(when the server states one), its MD5 (when one is known) and its gzip stream have been checked,
so an interrupted or corrupt transfer never sits where a later run would trust it. A failed
attempt is removed and tried once more before giving up with a ``DataError``.

Those checks cannot tell a mirror's repacked archive from a wrong one: only reading its content can.
So downloads land in a folder of this process (``unvalidated_downloads``) and reach the name that later
runs reuse only once the reader has validated them (``keep``); whatever is still in that folder when
the process leaves it, such as a download whose content failed, is removed with it.
"""
import contextlib
import errno
import gzip
import hashlib
import http.client
import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
import zlib

from tqdm import tqdm

from data.errors import DataError

_CHUNK = 1 << 20
_TIMEOUT_S = 60
_ATTEMPTS = 2          # the first try and one retry
_PART = ".part"
_UNVALIDATED = ".unvalidated"


class _BadTransfer(Exception):
    """An attempt that produced a missing, short or corrupt file: worth one more try."""


def show_progress(progress):
    """Return whether to draw progress bars: asked for, and stderr is a terminal (not a log or a pipe)."""
    return bool(progress) and sys.stderr.isatty()


def md5_of(path):
    """Return the hex MD5 of a file, read in chunks (archives are hundreds of MB)."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(path, md5=None, gzipped=False):
    """Raise ``_BadTransfer`` unless ``path`` has the given MD5 (when given) and, when ``gzipped``,
    is a complete gzip stream. Returns nothing; exists so a downloaded file and a file handed to us
    are judged by the same rules."""
    if md5:
        actual = md5_of(path)
        if actual != md5.lower():
            raise _BadTransfer(f"its MD5 is {actual}, expected {md5.lower()}")
    if gzipped:
        try:
            with gzip.open(path, "rb") as f:
                while f.read(_CHUNK):
                    pass
        except (OSError, EOFError, zlib.error) as e:   # BadGzipFile is an OSError
            raise _BadTransfer(f"it is not a complete gzip file ({e})") from None


def verify_local(path, md5=None, what="file"):
    """Check a file the user pointed at (``--archive``); raise ``DataError`` saying why it is unusable.

    Returns ``path``. The file is never deleted: it is the user's.
    """
    if not os.path.isfile(path):
        raise DataError(f"The {what} {path} does not exist or is not a file. Check the path given "
                        "with --archive, or leave --archive out to download it.")
    try:
        check_file(path, md5, gzipped=path.endswith(".gz"))
    except _BadTransfer as e:
        hint = (" If it is a repacked archive you trust, pass its MD5 with --md5." if md5 else "")
        raise DataError(f"The {what} {path} cannot be used: {e}. Download it again (or from a mirror "
                        f"with --url) and pass it with --archive.{hint}") from None
    return path


def _download_once(url, part, progress, name):
    """Copy ``url`` into the file ``part`` (a progress bar titled ``name``); raise ``_BadTransfer`` if
    the transfer fails or is short."""
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, open(part, "wb") as out:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            received = 0
            with tqdm(total=expected, unit="B", unit_scale=True, desc=name,
                      disable=not show_progress(progress), leave=False) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise DataError(f"The disk is full: writing {part} failed ({e}). Free some space or use "
                            "another --data-dir, then run again.") from None
        # URLError, HTTPError, refused connections, timeouts and dropped connections are all OSErrors.
        raise _BadTransfer(f"the download failed ({_reason(e)})") from None
    except http.client.HTTPException as e:   # e.g. IncompleteRead: the connection dropped mid-file
        raise _BadTransfer(f"the download broke off ({e!r})") from None
    if expected is not None and received != expected:
        raise _BadTransfer(f"the download is truncated ({received} of {expected} bytes)")


def _reason(error):
    """Return the most telling text of a urllib error (its nested reason, or itself)."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    return str(getattr(error, "reason", error) or error)


def fetch(url, dest, md5=None, progress=True, advice=""):
    """Download ``url`` to ``dest`` (http, https or file URL; its folder is made if missing) and
    return ``dest``.

    The file appears at ``dest`` only once complete and checked (see ``check_file``); a failed attempt
    is removed and retried once. ``advice`` ends the ``DataError`` message (what the user can do
    instead, e.g. a mirror or ``--archive``).
    """
    directory = os.path.dirname(os.path.abspath(dest))
    failure = None
    name = os.path.basename(dest)
    for _ in range(_ATTEMPTS):
        part = os.path.join(directory, f".{name}.{os.getpid()}{_PART}")
        try:
            os.makedirs(directory, exist_ok=True)
            _download_once(url, part, progress, name)
            check_file(part, md5, gzipped=name.endswith(".gz"))
            os.replace(part, dest)
            return dest
        except _BadTransfer as e:
            failure = e
        except OSError as e:
            raise DataError(f"Could not write {dest}: {e}. Check that --data-dir is writable and has "
                            "free space, then run again.") from None
        finally:
            if os.path.exists(part):
                os.remove(part)
    raise DataError(f"Could not get {os.path.basename(dest)} from {url}: {failure} (tried {_ATTEMPTS} "
                    f"times). {advice}".rstrip())


def reusable(path, md5=None):
    """Return whether ``path`` holds a file that passes ``check_file``.

    Lets a conversion that was interrupted after the download (which ``keep`` put at ``path``) start
    again without downloading again, while never trusting a file that no longer checks out. A file
    that fails is left where it is: only a validated download replaces it.
    """
    if not os.path.isfile(path):
        return False
    try:
        check_file(path, md5, gzipped=path.endswith(".gz"))
        return True
    except _BadTransfer:
        return False


@contextlib.contextmanager
def unvalidated_downloads(folder):
    """Yield the path of a folder inside ``folder`` for this process's downloads (``fetch`` makes it);
    on leaving, remove it with whatever is still in it.

    A download leaves it only through ``keep``, once its content has been validated: one that failed,
    or that Ctrl-C left unread, goes with the folder, and no run reads another process's folder, so
    a download whose content was never validated is never reused. The folders of processes of this
    host that are gone (kill -9 mid-download) are removed on the way in.
    """
    _remove_orphans(folder)
    path = os.path.join(folder, f"{_UNVALIDATED}.{socket.gethostname()}.{os.getpid()}")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _remove_orphans(folder):
    """Remove the download folders in ``folder`` of processes of this host that no longer run (the folder
    names the host, so a data dir shared across machines keeps the others' folders)."""
    prefix = f"{_UNVALIDATED}.{socket.gethostname()}."
    for entry in os.scandir(folder) if os.path.isdir(folder) else []:
        pid = entry.name[len(prefix):]
        if entry.name.startswith(prefix) and pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(entry.path, ignore_errors=True)


def _running(pid):
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as someone else's process
        pass
    return True


def keep(paths, folder):
    """Move the validated downloads ``paths`` into ``folder``, under their own names, where a later
    run finds them (``reusable``)."""
    for path in paths:
        os.replace(path, os.path.join(folder, os.path.basename(path)))

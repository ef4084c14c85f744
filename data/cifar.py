"""Read the official CIFAR-10/100 python-pickle tarballs into uint8 arrays.

Layout (https://www.cs.toronto.edu/~kriz/cifar.html): CIFAR-10 holds ``cifar-10-batches-py/``
with ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and ``batches.meta``; CIFAR-100 holds
``cifar-100-python/`` with ``train``, ``test`` and ``meta``. Each batch is a pickled dict whose
``data`` is a uint8 array [N, 3072] (the 1024 red, then green, then blue values of a 32x32 image,
row-major) and whose ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100) is a list of ints.
"""
import io
import pickle
import tarfile
import zlib

import numpy as np

from data.errors import DataError

_LAYOUT = {
    # dataset: (train members, test members, meta member, label key, class-names key)
    "cifar10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta",
                b"labels", b"label_names"),
    "cifar100": (["train"], ["test"], "meta", b"fine_labels", b"fine_label_names"),
}

# The only globals a CIFAR pickle needs: numpy's array reconstruction (under its numpy 1 and 2 names).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, bytes and numpy arrays and nothing else, so a file
    from a mirror cannot run code when it is read."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


def _unpickle(raw, member):
    """Return the dict pickled in ``raw`` (bytes keys, as Python 2 wrote them)."""
    try:
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:   # any malformed pickle: a damaged or foreign archive
        raise DataError(f"The archive member {member} is not a CIFAR pickle ({e}). The archive is "
                        "damaged or not the official one: download it again or pass a good copy "
                        "with --archive.") from None
    if not isinstance(obj, dict):
        raise DataError(f"The archive member {member} is not a CIFAR pickle (a {type(obj).__name__}, "
                        "not a dict). Pass the official python-version archive with --archive.")
    return obj


def _read_members(path, top_dir, names):
    """Return {name: bytes} for ``top_dir/name`` in the gzip tarball at ``path``, in one pass.

    One sequential pass, because seeking backwards in a gzip stream means decompressing again.
    """
    wanted = {f"{top_dir}/{n}": n for n in names}
    found = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    found[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"Could not read the archive {path} ({e}): it is truncated, corrupt or not a "
                        "gzip tarball. Download it again, use a mirror with --url, or pass a good copy "
                        "with --archive.") from None
    missing = [f"{top_dir}/{n}" for n in names if n not in found]
    if missing:
        raise DataError(f"The archive {path} lacks {', '.join(missing)}: it is not the official "
                        "python-version CIFAR archive. Pass the right file with --archive or --url.")
    return found


def _batch_arrays(batch, member, label_key):
    """Return (images uint8 [N, 32, 32, 3] HWC, labels int64 [N]) from one unpickled batch."""
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except (KeyError, ValueError, TypeError) as e:
        raise DataError(f"The archive member {member} does not hold CIFAR data and labels ({e}). "
                        "Pass the official python-version archive with --archive.") from None
    if len(images) != len(labels):
        raise DataError(f"The archive member {member} has {len(images)} images but {len(labels)} "
                        "labels. Pass the official python-version archive with --archive.")
    return np.ascontiguousarray(images), labels


def read_cifar(path, name, top_dir):
    """Read a CIFAR archive; return ({'train': (images, labels), 'test': (...)}, class names).

    ``name`` is 'cifar10' or 'cifar100' (fine labels); images are uint8 [N, 32, 32, 3].
    """
    train, test, meta, label_key, names_key = _LAYOUT[name]
    raw = _read_members(path, top_dir, train + test + [meta])
    splits = {}
    for split, members in (("train", train), ("test", test)):
        parts = [_batch_arrays(_unpickle(raw[m], m), m, label_key) for m in members]
        splits[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    try:
        classes = [n.decode() for n in _unpickle(raw[meta], meta)[names_key]]
    except (KeyError, AttributeError) as e:
        raise DataError(f"The archive member {meta} lacks the class names ({e}). Pass the official "
                        "python-version archive with --archive.") from None
    return splits, classes

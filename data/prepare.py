"""From nothing (or a mirror, or a file on disk) to a complete, verified record folder."""
import os

from data import cifar, fashion_mnist, fetch, records
from data.datasets import DATASETS, FASHION_MNIST_CLASSES
from data.errors import DataError


def _cifar_archive(info, record_dir, url, archive, md5, progress):
    """Return the path of a checked CIFAR archive: ``archive`` as given, or downloaded into
    ``record_dir`` from ``url`` (default: the official host).

    The MD5 checked is ``md5`` when given, else the official one, except for a mirror without
    ``md5`` (a mirror may repack the archive; its gzip and tar structure are still checked).
    """
    expected = md5 or (None if url else info.md5)
    if archive is not None:
        return fetch.verify_local(archive, expected, what="archive")
    # Named as the full command: train.py has no --url/--archive of its own and points here too.
    advice = ("This machine may not reach the host: download the archive elsewhere and run "
              f"`python3 -m data --dataset {info.name} --data-dir DIR --archive PATH`, or "
              f"`... --url URL` with a mirror (http, https or file) of {info.archive}.")
    return fetch.reuse_or_fetch(url or info.url, os.path.join(record_dir, info.archive), expected,
                                progress, advice)


def _read_source(info, data_dir, record_dir, url, archive, md5, progress):
    """Return ({'train': (images, labels), 'test': (...)}, class names) from the dataset's source."""
    if info.name == "fashion-mnist":
        if md5 is not None:
            raise DataError("--md5 applies to the CIFAR archives only: the four Fashion-MNIST files are "
                            "always checked against their published MD5s. Leave --md5 out.")
        folder = fashion_mnist.locate(record_dir, data_dir, archive, url, progress)
        splits = {s: fashion_mnist.read_split(folder, s) for s in records.SPLITS}
        return splits, list(FASHION_MNIST_CLASSES)
    path = _cifar_archive(info, record_dir, url, archive, md5, progress)
    return cifar.read_cifar(path, info.name, info.top_dir)


def prepare(name, data_dir, url=None, archive=None, md5=None, progress=True):
    """Make sure ``data_dir/name`` holds complete TFRecords of dataset ``name``; return that folder.

    Returns once a finished conversion there has been read through (``records.verify``: damaged
    records end in a DataError saying to delete the folder). Otherwise fetches (``url``: a mirror;
    ``archive``: a file already on disk, for Fashion-MNIST a folder of the IDX files), verifies,
    and converts. Raises ``DataError`` with a message for the user on any failure.
    """
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}: choose one of {', '.join(DATASETS)}.")
    record_dir = os.path.join(data_dir, name)
    if records.is_complete(record_dir, name):
        records.verify(record_dir)
        return record_dir
    try:
        os.makedirs(record_dir, exist_ok=True)
    except OSError as e:
        raise DataError(f"Could not create the folder {record_dir} ({e}). Choose a writable "
                        "--data-dir.") from None
    splits, classes = _read_source(DATASETS[name], data_dir, record_dir, url, archive, md5, progress)
    return records.write_records(record_dir, name, splits, classes, progress)

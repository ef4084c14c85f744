"""Find, fetch and read the four IDX files of MNIST or Fashion-MNIST (``data.datasets.IdxSource``).

Format (http://yann.lecun.com/exdb/mnist/): big-endian int32 magic 2051, count, rows, cols then
uint8 pixels for images; magic 2049, count then uint8 labels for labels; each file gzipped.
"""
import gzip
import os
import zlib

import numpy as np

from data import fetch
from data.datasets import IDX_FILES
from data.errors import DataError

_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049
_FILE_NAMES = [name for pair in IDX_FILES.values() for name in pair]


def advice(name, source, record_dir):
    """Return what to do when the four files of dataset ``name`` (IdxSource ``source``) cannot be had."""
    package = f"install the Debian package that fills {source.system_dir}, " if source.system_dir else ""
    return (f"Put the four IDX files (train-images-idx3-ubyte.gz ...) in {record_dir}, {package}or run "
            f"`.venv/bin/python -m data --dataset {name}` with --url pointing at a mirror (for instance "
            f"{source.mirror}) or --archive naming a folder that holds them.")


def _read_idx(path, magic, dims, help_text):
    """Return the uint8 array of an IDX file with the given magic number and ``dims`` size fields; a
    DataError ends with ``help_text``."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"Could not read {path} ({e}): it is truncated or not gzipped. {help_text}") from None
    header = np.frombuffer(raw[:4 * (dims + 1)], dtype=">i4")
    if len(header) != dims + 1 or header[0] != magic:
        raise DataError(f"{path} is not an IDX file with magic number {magic}. {help_text}")
    shape = tuple(int(d) for d in header[1:])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 * (dims + 1))
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path} holds {body.size} bytes of data where its header promises "
                        f"{int(np.prod(shape))}: the file is damaged. {help_text}")
    return body.reshape(shape)


def read_split(directory, split, help_text):
    """Return (images uint8 [N, 28, 28, 1], labels int64 [N]) of one split from ``directory``; a DataError
    ends with ``help_text`` (``advice``)."""
    images_file, labels_file = IDX_FILES[split]
    images = _read_idx(os.path.join(directory, images_file), _IMAGES_MAGIC, 3, help_text)
    labels = _read_idx(os.path.join(directory, labels_file), _LABELS_MAGIC, 1, help_text)
    if len(images) != len(labels):
        raise DataError(f"{images_file} has {len(images)} images but {labels_file} has {len(labels)} "
                        f"labels in {directory}. {help_text}")
    return images[..., np.newaxis], labels.astype(np.int64)


def _has_all(directory):
    """Return whether ``directory`` holds all four IDX files."""
    return all(os.path.isfile(os.path.join(directory, n)) for n in _FILE_NAMES)


def locate(name, source, record_dir, data_dir, downloads, archive=None, url=None, progress=True):
    """Return (a folder holding the four IDX files of dataset ``name``, the paths of those this run
    downloaded).

    Looked for in order: ``archive`` (a folder the user named), ``record_dir``, ``data_dir`` (the folder
    of every dataset's records, so only files with the dataset's published MD5s: MNIST's and
    Fashion-MNIST's have the same names), the Debian package folder of ``source`` (an IdxSource) if it
    has one; otherwise all four are fetched into ``downloads`` (see ``fetch.unvalidated_downloads``) from
    ``url`` (a mirror's base address) or the source's host, each checked against its published MD5.
    """
    help_text = advice(name, source, record_dir)
    if archive is not None:
        if not _has_all(archive):
            raise DataError(f"The folder {archive} given with --archive does not hold all of "
                            f"{', '.join(_FILE_NAMES)}. {help_text}")
        return archive, []
    if _has_all(record_dir):
        return record_dir, []
    if all(fetch.reusable(os.path.join(data_dir, file), source.md5[file]) for file in _FILE_NAMES):
        return data_dir, []
    if source.system_dir and _has_all(source.system_dir):
        return source.system_dir, []
    base = url or source.host
    base = base if base.endswith("/") else base + "/"
    return downloads, [fetch.fetch(base + file, os.path.join(downloads, file), source.md5[file], progress,
                                   help_text) for file in _FILE_NAMES]

"""Find, fetch and read the four Fashion-MNIST IDX files.

Format (http://yann.lecun.com/exdb/mnist/): big-endian int32 magic 2051, count, rows, cols then
uint8 pixels for images; magic 2049, count then uint8 labels for labels; each file gzipped.
"""
import gzip
import os
import zlib

import numpy as np

from data import fetch
from data.datasets import (FASHION_MNIST_FILES, FASHION_MNIST_HOST, FASHION_MNIST_MD5,
                           FASHION_MNIST_SYSTEM_DIR)
from data.errors import DataError

_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049
_FILE_NAMES = [name for pair in FASHION_MNIST_FILES.values() for name in pair]
_ADVICE = ("Put the four IDX files (train-images-idx3-ubyte.gz ...) in the data dir, install Debian's "
           "dataset-fashion-mnist package, or run `.venv/bin/python -m data --dataset fashion-mnist` "
           "with --url pointing at a mirror (for instance "
           "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/) or --archive naming "
           "a folder that holds them.")


def _read_idx(path, magic, dims):
    """Return the uint8 array of an IDX file with the given magic number and ``dims`` size fields."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"Could not read {path} ({e}): it is truncated or not gzipped. {_ADVICE}") from None
    header = np.frombuffer(raw[:4 * (dims + 1)], dtype=">i4")
    if len(header) != dims + 1 or header[0] != magic:
        raise DataError(f"{path} is not an IDX file with magic number {magic}. {_ADVICE}")
    shape = tuple(int(d) for d in header[1:])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 * (dims + 1))
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path} holds {body.size} bytes of data where its header promises "
                        f"{int(np.prod(shape))}: the file is damaged. {_ADVICE}")
    return body.reshape(shape)


def read_split(directory, split):
    """Return (images uint8 [N, 28, 28, 1], labels int64 [N]) of one split from ``directory``."""
    images_file, labels_file = FASHION_MNIST_FILES[split]
    images = _read_idx(os.path.join(directory, images_file), _IMAGES_MAGIC, 3)
    labels = _read_idx(os.path.join(directory, labels_file), _LABELS_MAGIC, 1)
    if len(images) != len(labels):
        raise DataError(f"{images_file} has {len(images)} images but {labels_file} has {len(labels)} "
                        f"labels in {directory}. {_ADVICE}")
    return images[..., np.newaxis], labels.astype(np.int64)


def _has_all(directory):
    """Return whether ``directory`` holds all four IDX files."""
    return all(os.path.isfile(os.path.join(directory, n)) for n in _FILE_NAMES)


def locate(record_dir, data_dir, downloads, archive=None, url=None, progress=True):
    """Return (a folder holding the four IDX files, the paths of those this run downloaded).

    Looked for in order: ``archive`` (a folder the user named), ``record_dir``, ``data_dir``, Debian's
    package folder; otherwise all four are fetched into ``downloads`` (see
    ``fetch.unvalidated_downloads``) from ``url`` (a mirror's base address) or the official host, each
    checked against its published MD5.
    """
    if archive is not None:
        if not _has_all(archive):
            raise DataError(f"The folder {archive} given with --archive does not hold all of "
                            f"{', '.join(_FILE_NAMES)}. {_ADVICE}")
        return archive, []
    for directory in (record_dir, data_dir, FASHION_MNIST_SYSTEM_DIR):
        if _has_all(directory):
            return directory, []
    base = url or FASHION_MNIST_HOST
    base = base if base.endswith("/") else base + "/"
    return downloads, [fetch.fetch(base + name, os.path.join(downloads, name), FASHION_MNIST_MD5[name],
                                   progress, _ADVICE) for name in _FILE_NAMES]

"""Helpers for the data tests: synthetic CIFAR archives and IDX files in the official layouts, a
loopback HTTP server, and an independent reader of the TFRecords the converter writes."""
import contextlib
import gzip
import http.server
import io
import os
import pickle
import socket
import tarfile
import threading

import numpy as np

from tfcompat import tf

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _pickle_batch(obj):
    """Pickle as the CIFAR files are: protocol 2, bytes keys."""
    return pickle.dumps(obj, protocol=2)


def _add(tar, name, payload):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def make_cifar_archive(path, name, n_train, n_test, seed=0, leave_out=(), label_count=None):
    """Write a gzip tarball in the exact layout of the official python-version CIFAR archive.

    Returns ({'train': (images uint8 [N, 32, 32, 3], labels), 'test': ...}, class names): the source
    the converted records must equal. ``leave_out``: member names to omit. ``label_count``: labels
    are drawn from 0 .. label_count - 1 (default: the number of classes; more gives labels that
    name no class).
    """
    rng = np.random.default_rng(seed)
    classes = CIFAR10_NAMES if name == "cifar10" else [f"fine{i}" for i in range(100)]
    splits = {s: (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                  rng.integers(0, label_count or len(classes), n))
              for s, n in (("train", n_train), ("test", n_test))}
    if name == "cifar10":
        top = "cifar-10-batches-py"
        members = {f"data_batch_{i + 1}": ("train", i, 5) for i in range(5)}
        members["test_batch"] = ("test", 0, 1)
        label_key, meta = b"labels", {b"label_names": [c.encode() for c in classes],
                                      b"num_cases_per_batch": 10000, b"num_vis": 3072}
        meta_name = "batches.meta"
    else:
        top = "cifar-100-python"
        members = {"train": ("train", 0, 1), "test": ("test", 0, 1)}
        label_key, meta = b"fine_labels", {b"fine_label_names": [c.encode() for c in classes],
                                           b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}
        meta_name = "meta"
    with tarfile.open(path, "w:gz") as tar:
        top_info = tarfile.TarInfo(top)
        top_info.type = tarfile.DIRTYPE
        tar.addfile(top_info)
        for member, (split, part, parts) in members.items():
            images, labels = splits[split]
            chunk = slice(part * len(images) // parts, (part + 1) * len(images) // parts)
            # Official layout: rows of 3072 bytes, all red values, then green, then blue.
            data = images[chunk].transpose(0, 3, 1, 2).reshape(-1, 3072).copy()
            batch = {b"batch_label": f"{split} batch {part + 1} of {parts}".encode(),
                     label_key: [int(v) for v in labels[chunk]], b"data": data,
                     b"filenames": [f"img_{i}.png".encode() for i in range(len(data))]}
            if name == "cifar100":
                batch[b"coarse_labels"] = [int(v) // 5 for v in labels[chunk]]
            if member not in leave_out:
                _add(tar, f"{top}/{member}", _pickle_batch(batch))
        if meta_name not in leave_out:
            _add(tar, f"{top}/{meta_name}", _pickle_batch(meta))
        _add(tar, f"{top}/readme.html", b"<html></html>")
    return splits, classes


def gzip_tarball(members):
    """Return the bytes of a gzip tarball holding ``members`` {name: bytes}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            _add(tar, name, payload)
    return buffer.getvalue()


def files_under(directory):
    """Return the sorted paths, relative to ``directory``, of every file below it, hidden ones included."""
    return sorted(os.path.relpath(os.path.join(root, f), directory)
                  for root, _, files in os.walk(directory) for f in files)


def write_idx(directory, images_name, labels_name, images, labels):
    """Write gzipped IDX files (big-endian magic 2051/2049 headers) as Fashion-MNIST ships them."""
    count, rows, cols = images.shape
    with gzip.open(os.path.join(directory, images_name), "wb") as f:
        f.write(np.array([2051, count, rows, cols], ">i4").tobytes() + images.tobytes())
    with gzip.open(os.path.join(directory, labels_name), "wb") as f:
        f.write(np.array([2049, count], ">i4").tobytes() + labels.astype(np.uint8).tobytes())


def read_records(path):
    """Return (images uint8 [N, H, W, C], labels, formats, heights, widths) of a TFRecord file,
    parsing each Example with the protobuf class and decoding its PNG with TensorFlow."""
    examples = [tf.train.Example.FromString(r) for r in tf.io.tf_record_iterator(path)]

    def field(example, key, kind):
        return getattr(example.features.feature[key], kind).value[0]

    pngs = [field(e, "image/encoded", "bytes_list") for e in examples]
    with tf.Graph().as_default():
        encoded = tf.placeholder(tf.string, [])
        decoded = tf.io.decode_png(encoded)
        with tf.Session() as sess:
            images = np.stack([sess.run(decoded, {encoded: p}) for p in pngs])
    return (images,
            np.array([field(e, "image/class/label", "int64_list") for e in examples]),
            {field(e, "image/format", "bytes_list") for e in examples},
            {field(e, "image/height", "int64_list") for e in examples},
            {field(e, "image/width", "int64_list") for e in examples})


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.routes[path]``: a list of responses used in turn (the last one repeats).

    A response is bytes (sent whole), or ("cut", bytes, n): the full length announced, only n bytes
    sent, then the connection closed (a transfer broken off mid-file).
    """

    def do_GET(self):
        self.server.requests.append(self.path)
        responses = self.server.routes.get(self.path)
        if not responses:
            self.send_error(404)
            return
        response = responses.pop(0) if len(responses) > 1 else responses[0]
        body, sent = (response[1], response[2]) if isinstance(response, tuple) else (response, None)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if sent is None else body[:sent])
        if sent is not None:
            self.close_connection = True

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def http_server(routes):
    """Run a loopback HTTP server for ``routes`` {path: [responses]}; yield (base URL, request log)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.routes, server.requests = routes, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.requests
    finally:
        server.shutdown()
        server.server_close()


def dead_url(path="/cifar-10-python.tar.gz"):
    """Return an http URL on a loopback port where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"

"""Helpers for the trainer's end-to-end tests: a tiny Fashion-MNIST-shaped record folder, runs of
train.py (in-process or as a subprocess), free ports for loopback clusters, and readers of the
checkpoints and event files it leaves."""
import glob
import os
import socket
import subprocess
import sys

import numpy as np

from data import records
from data.datasets import FASHION_MNIST

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_SIZE, TEST_SIZE = 48, 20

# A tiny LeNet run: 8 images a batch; eval/checkpoint every 2 steps at L = 1 (16 / 48 of an epoch).
TINY = ["-d", "fashion-mnist", "-m", "lenet", "--set", "batch_size=8", "--set", "log_every=1",
        "--set", "eval_every=0.34", "--set", "checkpoint_every=0.34", "--set", "bn_reestimate_batches=2",
        "--set", "keep_checkpoints=2"]


def tiny_split(n, rng=None):
    """Return (images uint8 [n, 28, 28, 1], labels int64 [n]) of a small learnable 10-class dataset:
    class k has a bright 6x6 square at a position that depends on k, over uniform noise."""
    rng = rng or np.random.RandomState(0)
    labels = rng.randint(0, 10, n).astype(np.int64)
    images = rng.randint(0, 80, size=(n, 28, 28, 1)).astype(np.uint8)
    for i, k in enumerate(labels):
        row, col = 2 + 8 * (k // 4), 2 + 6 * (k % 4)
        images[i, row:row + 6, col:col + 6, 0] = 250
    return images, labels


def write_tiny_records(data_dir, seed=0):
    """Write TFRecords of ``tiny_split`` data where data.prepare looks for fashion-mnist under
    ``data_dir``, in the real format (data.records); return the record folder."""
    rng = np.random.RandomState(seed)
    record_dir = os.path.join(str(data_dir), "fashion-mnist")
    splits = {"train": tiny_split(TRAIN_SIZE, rng), "test": tiny_split(TEST_SIZE, rng)}
    return records.write_records(record_dir, "fashion-mnist", splits, list(FASHION_MNIST.classes), progress=False)


def free_ports(n):
    """``n`` distinct ports free on every interface now (the test servers bind 0.0.0.0)."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# No dropout (WRN-10-1, dropout 0) and no Langevin noise: runs that should agree can be compared exactly.
EXACT = ["-m", "wrn", "--set", "wrn_depth=10", "--set", "wrn_width=1", "--set", "epsilon=0"]


def common_args(tmp_path, data_dir):
    """Flags that put data, checkpoints and events under the test's own folders."""
    return ["--data-dir", str(data_dir), "--checkpoint-dir", str(tmp_path / "ckpt"),
            "--logdir", str(tmp_path / "tb")]


def run_main(argv):
    """Run train.main(argv) in this process; return its exit status (SystemExit codes included)."""
    import train
    try:
        return train.main(argv)
    except SystemExit as e:
        return e.code


def subprocess_train(argv, **kwargs):
    """Start train.py as a child process (stdout and stderr piped, text, unless ``kwargs`` say otherwise);
    return the Popen."""
    options = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    options.update(kwargs)
    return subprocess.Popen([sys.executable, os.path.join(REPO, "train.py")] + argv, **options)


def checkpoint_values(prefix):
    """Return {variable name: value} of every variable saved in checkpoint ``prefix``."""
    from tfcompat import tf
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(prefix)}


def scalar_events(event_dir):
    """Return {tag: [(step, value), ...]} of the scalars in ``event_dir``, as TensorBoard shows them
    (its EventAccumulator, which also drops events purged by a restart's SessionLog.START)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(event_dir, size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def scalar_records(event_dir, tag):
    """Return the steps of every ``tag`` scalar written in ``event_dir``'s event files, duplicates and
    purged ones included (the raw records, before TensorBoard's purge)."""
    from tfcompat import tf
    return sorted(e.step for path in event_files(event_dir) for e in tf.train.summary_iterator(path)
                  for v in e.summary.value if v.tag == tag)


def set_checkpoint_values(prefix, changes):
    """Rewrite checkpoint ``prefix`` in place with the variables named in ``changes`` ({name: value})
    replaced: stages a state that a run killed at the wrong moment could leave."""
    from tfcompat import tf
    values = dict(checkpoint_values(prefix), **changes)
    with tf.Graph().as_default():
        variables = {name: tf.Variable(value, name="v%d" % i) for i, (name, value) in enumerate(values.items())}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver(variables).save(sess, prefix, write_meta_graph=False, write_state=False)


def image_tags(event_dir):
    """Return the image summary tags in ``event_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(event_dir, size_guidance={"images": 0})
    acc.Reload()
    return acc.Tags()["images"]


def event_files(event_dir):
    """Return the event files in ``event_dir``."""
    return glob.glob(os.path.join(str(event_dir), "events.out.tfevents.*"))


def train_args(tmp_path, data_dir, *extra):
    """train.py's flags for a TINY run in the test's folders, plus ``extra``."""
    return TINY + common_args(tmp_path, data_dir) + list(extra)

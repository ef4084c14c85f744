"""Write and recognise a complete set of TFRecords for one dataset.

A record folder holds ``train.tfrecord``, ``test.tfrecord`` (one ``tf.train.Example`` per image,
TF-Slim keys), ``labels.txt`` (``index:name`` lines, as TF-Slim writes them) and ``meta.json``
(sizes, shape, per-channel mean/std of the training images, and each file's byte size).
``meta.json`` is written last, after every other file has been renamed into place: a folder without
it, or whose files do not have the sizes it records, is incomplete and is converted again. A complete
folder is read through once more (``verify``) before it is used: bytes damaged in place keep a file's
size, so only reading every record, whose CRCs TensorFlow checks, finds them.

Each file is written under a hidden temporary name of the writing process, then renamed. One process at a
time converts into a folder (``data.prepare`` holds the dataset's lock), and it first removes the
temporaries that conversions killed outright left (``remove_temporaries``).
"""
import contextlib
import errno
import glob
import json
import os

import numpy as np
from tqdm import tqdm

from data.errors import DataError
from data.fetch import show_progress
from tfcompat import first_line, tf
from training.atomic_file import write_atomically

META = "meta.json"
# What the pipeline and train.py read from meta.json: a folder whose meta.json lacks one is converted again.
_META_KEYS = ("dataset", "files", "num_classes", "train_size", "test_size", "image_shape", "mean", "std")
LABELS = "labels.txt"
SPLITS = ("train", "test")
_FILES = tuple(f"{split}.tfrecord" for split in SPLITS) + (LABELS, META)   # every file of a record folder
_ENCODE_BATCH = 500     # images per encode_png call (it takes a batch) and per session.run
_STATS_CHUNK = 5000     # images per step of the mean/std pass (bounds float64 temporaries)
_VERIFY_BATCH = 1000    # records per parse_example call and per session.run while verifying
# The keys the pipeline parses (TF-Slim's names): a record without them cannot be trained on.
FEATURES = {"image/encoded": tf.io.FixedLenFeature([], tf.string),
                      "image/class/label": tf.io.FixedLenFeature([], tf.int64)}


def record_path(record_dir, split):
    """Return the path of the TFRecord file of ``split`` ('train' or 'test')."""
    return os.path.join(record_dir, f"{split}.tfrecord")


def read_meta(record_dir):
    """Return the parsed ``meta.json`` of a record folder (sizes, image_shape, mean, std, ...)."""
    with open(os.path.join(record_dir, META)) as f:
        return json.load(f)


def is_complete(record_dir, name):
    """Return whether ``record_dir`` holds a finished conversion of dataset ``name``."""
    return incomplete_reason(record_dir, name) is None


def incomplete_reason(record_dir, name):
    """Return None when ``record_dir`` holds a finished conversion of dataset ``name``; else why not, in
    a few words, or "" when there is nothing of a conversion there (a first conversion, not a repair)."""
    try:
        meta = read_meta(record_dir)
    except FileNotFoundError:
        started = [f for f in (record_path(record_dir, s) for s in SPLITS) if os.path.exists(f)]
        return f"{META} is missing: a conversion did not finish" if started else ""
    except (OSError, ValueError) as e:
        return f"{META} cannot be read ({e})"
    if not isinstance(meta, dict) or not all(key in meta for key in _META_KEYS):
        return f"{META} lacks some of {', '.join(_META_KEYS)}"
    if meta["dataset"] != name:
        return f"{META} is that of {meta['dataset']}"
    try:
        return _size_mismatch(record_dir, meta["files"])
    except (AttributeError, OSError, TypeError, ValueError):
        return f"{META} lists its files wrongly"


def _size_mismatch(record_dir, files):
    """Return why a file of ``files`` ({name: byte size}, from meta.json) is not as recorded, else None."""
    for file_name, size in files.items():
        path = os.path.join(record_dir, file_name)
        if not os.path.exists(path):
            return f"{file_name} is missing"
        if os.path.getsize(path) != size:
            return f"{file_name} has {os.path.getsize(path)} bytes where {META} records {size}"
    return None


def _batch_counts(path):
    """Return an op that yields, run after run, how many records the next batch of the file at
    ``path`` holds, then raises OutOfRangeError.

    Reading a record makes TensorFlow check its CRCs; each is parsed as an Example with the
    pipeline's keys; no PNG is decoded, and only the counts come back to Python.
    """
    batches = tf.data.TFRecordDataset(path, buffer_size=8 << 20).batch(_VERIFY_BATCH).prefetch(2)
    serialized = tf.data.make_one_shot_iterator(batches).get_next()
    return tf.size(tf.io.parse_example(serialized, FEATURES)["image/class/label"])


def _total(sess, op):
    """Return the sum of what ``op`` yields over the runs until its dataset ends."""
    total = 0
    while True:
        try:
            total += sess.run(op)
        except tf.errors.OutOfRangeError:
            return total


def _cause(error):
    """Return the line of a TensorFlow op error that states its cause (``first_line``), without a final
    period. A record that is not an Example is quoted after ", value: " as raw bytes, which may span
    lines: only the words before it are kept."""
    return first_line(error).split(", value: ")[0].rstrip(".")


def _damage(sess, count_op, path, expected):
    """Return why the record file at ``path`` is damaged, or "" when ``count_op`` (``_batch_counts``)
    reads all of it and counts ``expected`` records."""
    try:
        count = _total(sess, count_op)
    except tf.errors.OpError as e:
        return f"reading {path} failed: {_cause(e)}"
    except UnicodeDecodeError:      # TensorFlow's message quoted a record's raw bytes and could not be made
        return f"reading {path} failed: a record is not a tf.train.Example"
    if count != expected:
        return f"{path} holds {count} records where meta.json says {expected}"
    return ""


def verify(record_dir):
    """Raise DataError unless every record of both splits of a complete folder reads back.

    Each record is read (TensorFlow checks its CRCs) and parsed as an Example with the pipeline's
    keys, and each split's count must be meta.json's. Exists because ``is_complete`` compares file
    sizes only: a test split damaged in place would fail at the first evaluation, an epoch into
    training. About 0.4 s for CIFAR-10's 60,000 records (no PNG is decoded). Returns nothing and
    never deletes anything: the message tells the user to delete the folder.
    """
    meta = read_meta(record_dir)
    paths = {split: record_path(record_dir, split) for split in SPLITS}
    with tf.Graph().as_default():
        counts = {split: _batch_counts(paths[split]) for split in SPLITS}
        with tf.Session() as sess:
            for split in SPLITS:
                damage = _damage(sess, counts[split], paths[split], meta[f"{split}_size"])
                if damage:
                    raise DataError(f"The records in {record_dir} are damaged: {damage}. Delete "
                                    f"{record_dir} and run again: the next run converts the dataset "
                                    "afresh.")


def channel_stats(images):
    """Return (mean, std) lists per channel of uint8 images [N, H, W, C], in pixel units (0..255).

    Computed in chunks with float64 sums: one float64 copy of CIFAR would take 1.2 GB.
    """
    channels = images.shape[-1]
    total, total_sq = np.zeros(channels), np.zeros(channels)
    for start in range(0, len(images), _STATS_CHUNK):
        chunk = images[start:start + _STATS_CHUNK].reshape(-1, channels).astype(np.float64)
        total += chunk.sum(axis=0)
        total_sq += np.square(chunk).sum(axis=0)
    count = images.size // channels
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    return mean.tolist(), std.tolist()


def _png_batches(images):
    """Yield lists of PNG bytes for consecutive slices of ``images`` (uint8 [N, H, W, C]).

    One graph encodes every image: encode_png over whole batches, batches spread over the cores by
    a parallel tf.data map, one session.run per batch (never one per image).
    """
    with tf.Graph().as_default():
        source = tf.placeholder(tf.uint8, images.shape)
        dataset = (tf.data.Dataset.from_tensor_slices(source).batch(_ENCODE_BATCH)
                   .map(tf.io.encode_png, num_parallel_calls=tf.data.AUTOTUNE).prefetch(4))
        iterator = tf.data.make_initializable_iterator(dataset)
        next_batch = iterator.get_next()
        with tf.Session() as sess:
            sess.run(iterator.initializer, feed_dict={source: images})
            while True:
                try:
                    yield sess.run(next_batch)
                except tf.errors.OutOfRangeError:
                    return


def _example_serializer(height, width):
    """Return f(png, label) -> one serialised tf.train.Example with the TF-Slim image keys.

    One Example is built once and only its image and label are replaced per image: building a
    fresh proto per image costs ten times more than PNG encoding itself.
    """
    example = tf.train.Example()
    feature = example.features.feature
    feature["image/encoded"].bytes_list.value.append(b"")
    feature["image/format"].bytes_list.value.append(b"png")
    feature["image/class/label"].int64_list.value.append(0)
    feature["image/height"].int64_list.value.append(height)
    feature["image/width"].int64_list.value.append(width)
    encoded = feature["image/encoded"].bytes_list.value
    label_value = feature["image/class/label"].int64_list.value

    def serialize(png, label):
        encoded[0] = png
        label_value[0] = label
        return example.SerializeToString()

    return serialize


def _write_split(path, images, labels, progress, desc):
    """Write one split's Examples to ``path`` (a temporary name; the caller renames it)."""
    serialize = _example_serializer(*images.shape[1:3])
    with tf.io.TFRecordWriter(path) as writer, \
            tqdm(total=len(images), unit="img", desc=desc, disable=not show_progress(progress),
                 leave=False) as bar:
        labels = labels.tolist()
        done = 0
        for pngs in _png_batches(images):
            for png in pngs:
                writer.write(serialize(png, labels[done]))
                done += 1
            bar.update(len(pngs))


def _check_split(name, split, images, labels, num_classes):
    """Raise DataError unless images are uint8 [N, H, W, C] with N labels in [0, num_classes)."""
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels) or len(images) == 0:
        raise DataError(f"The {split} split of {name} read from the source is malformed "
                        f"({images.dtype} {images.shape}, {len(labels)} labels). Pass the official files.")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(f"The {split} split of {name} has labels outside 0..{num_classes - 1}. "
                        "Pass the official files.")


def check_splits(name, splits, num_classes):
    """Raise DataError unless both splits of {'train': (images, labels), 'test': ...} are well formed.

    ``write_records`` checks before writing; ``prepare`` checks a downloaded source with it before
    keeping the download, so a source whose content fails is never kept.
    """
    for split in SPLITS:
        _check_split(name, split, *splits[split], num_classes)


def _temporary(path, pid):
    """Return the name the file ``path`` of a record folder is written under by process ``pid`` before it
    is renamed to ``path``; ``pid`` "*" gives the glob pattern of every process's."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.{pid}.tmp")


def remove_temporaries(record_dir):
    """Remove the temporary files (``_temporary``) of conversions in ``record_dir``, whichever process
    wrote them.

    A conversion removes its own when it fails in Python, not when it is killed outright (kill -9, the
    out-of-memory killer), and those (up to 140 MB for CIFAR-10) would stay for ever. Only for a caller
    that holds the dataset's lock (``data.prepare``): no other process converts then, so any found belong
    to a conversion that died.
    """
    for name in _FILES:
        for path in glob.glob(_temporary(os.path.join(glob.escape(record_dir), name), "*")):
            with contextlib.suppress(OSError):  # another user's, in a folder this one cannot write: harmless
                os.remove(path)


def _write_text(path, text):
    """Write ``text`` to ``path`` whole or not at all, through this process's ``_temporary`` name."""
    write_atomically(path, lambda f: f.write(text.encode("utf-8")), _temporary(path, os.getpid()))


def _discard(paths):
    """Remove whichever of ``paths`` exist."""
    for path in paths:
        if os.path.exists(path):
            os.remove(path)


def write_records(record_dir, name, splits, class_names, progress=True):
    """Convert {'train': (images, labels), 'test': (...)} into a complete record folder.

    Every file is written to a temporary name and renamed; ``meta.json``, which marks the folder
    complete, goes last. On any failure no temporary file is left and no ``meta.json`` vouches for
    what is there. Returns ``record_dir``. No other process may be converting into ``record_dir``
    meanwhile (``data.prepare`` holds the dataset's lock; a test's folder is its own).
    """
    check_splits(name, splits, len(class_names))
    os.makedirs(record_dir, exist_ok=True)
    meta_path = os.path.join(record_dir, META)
    if os.path.exists(meta_path):
        os.remove(meta_path)        # the old set is being replaced: stop vouching for it first
    labels_path = os.path.join(record_dir, LABELS)
    finals = [record_path(record_dir, split) for split in SPLITS]
    temporaries = [_temporary(final, os.getpid()) for final in finals]
    try:
        for split, tmp, final in zip(SPLITS, temporaries, finals):
            _write_split(tmp, *splits[split], progress, f"{name} {split}")
            os.replace(tmp, final)
        _write_text(labels_path, "".join(f"{i}:{c}\n" for i, c in enumerate(class_names)))
        mean, std = channel_stats(splits["train"][0])
        meta = {"dataset": name, "num_classes": len(class_names),
                "image_shape": list(splits["train"][0].shape[1:]),
                "train_size": len(splits["train"][0]), "test_size": len(splits["test"][0]),
                "mean": mean, "std": std,
                "files": {os.path.basename(f): os.path.getsize(f) for f in finals + [labels_path]}}
        _write_text(meta_path, json.dumps(meta, indent=1) + "\n")
    except BaseException as e:
        # Interrupted or failed (Ctrl-C included): leave no record file of this attempt behind.
        _discard(temporaries + finals + [labels_path])
        if not isinstance(e, (OSError, tf.errors.OpError)):
            raise
        full = getattr(e, "errno", None) == errno.ENOSPC or "space" in str(e).lower()
        what = "The disk is full" if full else "Writing the records failed"
        raise DataError(f"{what}: {e}. Free some space or choose another --data-dir, then run "
                        f"again; nothing half-written was kept in {record_dir}.") from None
    return record_dir

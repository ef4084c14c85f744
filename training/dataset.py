"""The record folder of a run's dataset: prepared on demand, and its facts read from the records."""
import types


def prepare_records(s):
    """Return the TFRecord folder of dataset ``s.dataset`` under ``s.data_dir``, converting (or
    downloading) it first when missing. Raises data.DataError, whose message says what to do."""
    from data import prepare
    return prepare(s.dataset, s.data_dir, progress=True)


def record_info(record_dir):
    """Return the dataset facts the trainer needs (num_classes, train_size, test_size, image_shape),
    read from the records' ``meta.json``: effective epochs then stay right for any record folder,
    a small one made by a test included."""
    from data import read_meta
    meta = read_meta(record_dir)
    return types.SimpleNamespace(num_classes=meta["num_classes"], train_size=meta["train_size"],
                                 test_size=meta["test_size"], image_shape=tuple(meta["image_shape"]))

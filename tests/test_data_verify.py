"""A complete record folder is read through before it is used (records.verify, run by data.prepare):
bytes damaged in place, which keep the file sizes meta.json records, are found at once."""
import json
import os
import re
import shutil

import numpy as np
import pytest

from data import DataError, prepare, records
from data.__main__ import main as cli_main
from tfcompat import tf

N_TRAIN, N_TEST = 300, 100


@pytest.fixture(scope="module")
def intact(tmp_path_factory):
    """A CIFAR-shaped record folder written by records.write_records, never modified: copy it."""
    rng = np.random.default_rng(0)
    splits = {s: (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n))
              for s, n in (("train", N_TRAIN), ("test", N_TEST))}
    record_dir = str(tmp_path_factory.mktemp("intact") / "cifar10")
    return records.write_records(record_dir, "cifar10", splits, [f"c{i}" for i in range(10)], progress=False)


@pytest.fixture
def data_dir(tmp_path, intact):
    """A data dir holding a fresh copy of the intact folder as its cifar10/."""
    shutil.copytree(intact, tmp_path / "cifar10")
    return str(tmp_path)


def _overwrite_middle(path, count=64):
    """Overwrite ``count`` bytes in the middle of ``path`` with zeros (same size); return the new bytes."""
    content = bytearray(open(path, "rb").read())
    middle = len(content) // 2
    content[middle:middle + count] = bytes(count)
    with open(path, "wb") as f:
        f.write(content)
    return bytes(content)


def _edit_meta(record_dir, **changes):
    """Set keys of the folder's meta.json (what the next conversion would have written)."""
    meta = records.read_meta(record_dir)
    meta.update(changes)
    with open(os.path.join(record_dir, records.META), "w") as f:
        json.dump(meta, f)


def _assert_one_paragraph(message):
    """TensorFlow's graph traceback, node names and '[[...]]' lines must not reach the user."""
    assert "\n" not in message
    for noise in ("Graph execution error", "Detected at node", "Node:", "[[", "File \""):
        assert noise not in message, message


def test_intact_folder_is_used_as_it_is(data_dir):
    record_dir = os.path.join(data_dir, "cifar10")
    stamps = {e.name: e.stat().st_mtime_ns for e in os.scandir(record_dir)}
    assert prepare("cifar10", data_dir, progress=False) == record_dir
    assert stamps == {e.name: e.stat().st_mtime_ns for e in os.scandir(record_dir)}


@pytest.mark.parametrize("split", ["test", "train"])
def test_bytes_damaged_in_place_are_a_clear_error(data_dir, split):
    record_dir = os.path.join(data_dir, "cifar10")
    path = os.path.join(record_dir, f"{split}.tfrecord")
    damaged = _overwrite_middle(path)
    assert records.is_complete(record_dir, "cifar10")        # the sizes alone do not show it
    with pytest.raises(DataError) as caught:
        prepare("cifar10", data_dir, progress=False)
    message = str(caught.value)
    expected = (re.escape(f"The records in {record_dir} are damaged: reading {path} failed: ")
                + r"corrupted record at \d+"
                + re.escape(f". Delete {record_dir} and run again: the next run converts the dataset afresh."))
    assert re.fullmatch(expected, message), message
    _assert_one_paragraph(message)
    assert open(path, "rb").read() == damaged                # reported, not deleted


def test_damage_is_reported_by_the_command_line(data_dir, capsys):
    record_dir = os.path.join(data_dir, "cifar10")
    _overwrite_middle(os.path.join(record_dir, "test.tfrecord"))
    assert cli_main(["--dataset", "cifar10", "--data-dir", data_dir]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: The records in {record_dir} are damaged: ")


@pytest.mark.parametrize("split", ["test", "train"])
def test_record_count_other_than_meta_json_is_an_error(data_dir, split):
    record_dir = os.path.join(data_dir, "cifar10")
    size = N_TEST if split == "test" else N_TRAIN
    _edit_meta(record_dir, **{f"{split}_size": size + 1})
    with pytest.raises(DataError) as caught:
        prepare("cifar10", data_dir, progress=False)
    path = os.path.join(record_dir, f"{split}.tfrecord")
    assert str(caught.value) == (f"The records in {record_dir} are damaged: {path} holds {size} records "
                                 f"where meta.json says {size + 1}. Delete {record_dir} and run again: "
                                 "the next run converts the dataset afresh.")


def _rewrite_test_split(record_dir, serialized):
    """Replace test.tfrecord by the records ``serialized`` (valid CRCs) and make meta.json agree."""
    path = os.path.join(record_dir, "test.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in serialized:
            writer.write(record)
    files = dict(records.read_meta(record_dir)["files"], **{"test.tfrecord": os.path.getsize(path)})
    _edit_meta(record_dir, files=files, test_size=len(serialized))


def _example_without_label():
    example = tf.train.Example()
    example.features.feature["image/encoded"].bytes_list.value.append(b"not decoded")
    return example.SerializeToString()


@pytest.mark.parametrize("record, reason", [
    (_example_without_label(),
     re.escape("Name: <unknown>, Feature: image/class/label (data type: int64) is required but could not be found")),
    # Not a protocol buffer: TensorFlow quotes the record after "value:", or cannot make its message
    # when the record is not UTF-8.
    (b"\n\x05hello, not an Example\n", "Could not parse example input"),
    (b"\x08\x96\x01\xff\xfe not an Example", "a record is not a tf.train.Example|Could not parse example input"),
], ids=["no label", "not a protocol buffer", "not UTF-8"])
def test_records_that_are_not_the_pipelines_examples_are_an_error(data_dir, record, reason):
    record_dir = os.path.join(data_dir, "cifar10")
    _rewrite_test_split(record_dir, [record] * 3)
    assert records.is_complete(record_dir, "cifar10")
    start = re.escape(f"The records in {record_dir} are damaged: reading {record_dir}/test.tfrecord failed: ")
    with pytest.raises(DataError, match=f"^{start}({reason})\\. Delete") as caught:
        prepare("cifar10", data_dir, progress=False)
    _assert_one_paragraph(str(caught.value))

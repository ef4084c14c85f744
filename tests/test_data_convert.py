"""Fetching, verifying and converting datasets into TFRecords (data.prepare and python -m data)."""
import dataclasses
import errno
import glob
import hashlib
import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

import data
from data import DATASETS, DataError, cifar, fetch, prepare, records
from data.datasets import IDX_FILES
from data.__main__ import main as cli_main
from data_fixtures import (dead_url, files_under, gzip_tarball, http_server, make_cifar_archive, read_records,
                           write_idx)

N_TRAIN, N_TEST = 250, 50


@pytest.fixture(scope="module")
def cifar10_archive(tmp_path_factory):
    """(archive bytes, source splits, class names) of a synthetic CIFAR-10 archive."""
    path = tmp_path_factory.mktemp("src") / "cifar-10-python.tar.gz"
    splits, classes = make_cifar_archive(str(path), "cifar10", N_TRAIN, N_TEST)
    return path.read_bytes(), splits, classes


def _assert_records_equal_source(record_dir, splits, classes):
    for split in ("train", "test"):
        images, labels, formats, heights, widths = read_records(os.path.join(record_dir, f"{split}.tfrecord"))
        np.testing.assert_array_equal(images, splits[split][0])
        np.testing.assert_array_equal(labels, splits[split][1])
        assert formats == {b"png"}
        assert heights == {splits[split][0].shape[1]} and widths == {splits[split][0].shape[2]}
    with open(os.path.join(record_dir, "labels.txt")) as f:
        assert f.read().splitlines() == [f"{i}:{c}" for i, c in enumerate(classes)]


def _no_records(directory):
    """Return whether no record file (final or temporary) and no meta.json is under ``directory``."""
    found = glob.glob(os.path.join(directory, "**", "*tfrecord*"), recursive=True)
    found += glob.glob(os.path.join(directory, "**", ".*tfrecord*"), recursive=True)
    return not found and not glob.glob(os.path.join(directory, "**", records.META), recursive=True)


def _no_partial_downloads(directory):
    return not glob.glob(os.path.join(directory, "**", "*.part"), recursive=True) and \
        not glob.glob(os.path.join(directory, "**", ".*.part"), recursive=True)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_conversion_through_url_equals_source(tmp_path, name):
    archive = tmp_path / "src.tar.gz"
    splits, classes = make_cifar_archive(str(archive), name, 200, 40, seed=1)
    file_name = DATASETS[name].archive
    with http_server({f"/{file_name}": [archive.read_bytes()]}) as (base, requests):
        record_dir = prepare(name, str(tmp_path / "d"), url=f"{base}/{file_name}", progress=False)
    assert record_dir == str(tmp_path / "d" / name)
    assert requests == [f"/{file_name}"]
    _assert_records_equal_source(record_dir, splits, classes)
    meta = data.read_meta(record_dir)
    assert (meta["train_size"], meta["test_size"], meta["num_classes"]) == (200, 40, len(classes))
    pixels = splits["train"][0].reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(meta["mean"], pixels.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(meta["std"], pixels.std(axis=0), rtol=1e-9)


def test_cli_url_with_md5_then_rerun_does_nothing(tmp_path, cifar10_archive, capsys):
    payload, splits, classes = cifar10_archive
    md5 = hashlib.md5(payload).hexdigest()
    with http_server({"/c.tar.gz": [payload]}) as (base, _):
        assert cli_main(["--dataset", "cifar10", "--data-dir", str(tmp_path),
                         "--url", f"{base}/c.tar.gz", "--md5", md5]) == 0
    record_dir = str(tmp_path / "cifar10")
    assert capsys.readouterr().out.strip() == record_dir
    _assert_records_equal_source(record_dir, splits, classes)
    stamps = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(record_dir, "*"))}
    # Complete records: nothing is fetched (the host is dead) and nothing is rewritten.
    assert prepare("cifar10", str(tmp_path), url=dead_url(), progress=False) == record_dir
    assert stamps == {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(record_dir, "*"))}


def test_archive_on_disk_checked_against_given_md5(tmp_path, cifar10_archive):
    payload, splits, classes = cifar10_archive
    archive = tmp_path / "mine.tar.gz"
    archive.write_bytes(payload)
    # Without --md5 an archive on disk must be the official one.
    with pytest.raises(DataError, match="MD5 .* expected c58f30108f718f92721af3b95e74349a"):
        prepare("cifar10", str(tmp_path / "a"), archive=str(archive), progress=False)
    assert _no_records(str(tmp_path / "a"))
    record_dir = prepare("cifar10", str(tmp_path / "b"), archive=str(archive),
                         md5=hashlib.md5(payload).hexdigest(), progress=False)
    _assert_records_equal_source(record_dir, splits, classes)
    assert archive.read_bytes() == payload      # the user's file is left alone


def _failing_source(case, payload, tmp_path):
    """Return (body the server sends, md5 to ask for, regex the error must match) for one failure."""
    if case == "wrong md5":
        return payload, "0" * 32, "MD5 is [0-9a-f]{32}, expected 0{32}"
    if case == "truncated":
        return payload[: len(payload) // 2], None, "not a complete gzip file"
    if case == "not gzip":
        return b"<html>Moved</html>", None, "not a complete gzip file"
    if case == "missing member":
        broken = tmp_path / "broken.tar.gz"
        make_cifar_archive(str(broken), "cifar10", 50, 10, leave_out=("test_batch",))
        return broken.read_bytes(), None, "lacks cifar-10-batches-py/test_batch"
    return b"", None, "Could not get cifar-10-python.tar.gz from .*refused"     # dead url


@pytest.mark.parametrize("case", ["wrong md5", "truncated", "not gzip", "dead url", "missing member"])
def test_failures_give_clear_error_and_leave_no_records(tmp_path, cifar10_archive, case):
    body, md5, expected = _failing_source(case, cifar10_archive[0], tmp_path)
    data_dir = str(tmp_path / "d")
    with http_server({"/c.tar.gz": [body]}) as (base, requests):
        url = dead_url() if case == "dead url" else f"{base}/c.tar.gz"
        with pytest.raises(DataError) as caught:
            prepare("cifar10", data_dir, url=url, md5=md5, progress=False)
    message = str(caught.value)
    assert re.search(expected, message), message
    if case != "missing member":     # a failed transfer names the ways out: a mirror, a file on disk
        assert "--archive" in message and "--url" in message
    # No archive is left where a later run would take it; the dataset's lock file stays (prepare.lock_path).
    assert files_under(data_dir) == [".cifar10.lock"]
    if case in ("wrong md5", "truncated", "not gzip"):
        assert len(requests) == 2    # the bad download was thrown away and tried once more
    assert _no_records(data_dir) and _no_partial_downloads(data_dir)


def test_broken_transfer_is_removed_and_retried(tmp_path, cifar10_archive):
    payload, splits, classes = cifar10_archive
    routes = {"/c.tar.gz": [("cut", payload, len(payload) // 3), payload]}
    with http_server(routes) as (base, requests):
        record_dir = prepare("cifar10", str(tmp_path), url=f"{base}/c.tar.gz", progress=False)
    assert len(requests) == 2
    _assert_records_equal_source(record_dir, splits, classes)
    assert _no_partial_downloads(str(tmp_path))


REMOVED = "The download (cifar-10-python.tar.gz) has been removed, so no later run will use it."


def _wrong_content(case, tmp_path):
    """Return (a gzip tarball that is not a usable CIFAR-10 archive, regex its DataError must match)."""
    if case == "not cifar":
        return gzip_tarball({"dataset/readme.txt": b"a mirror's other dataset"}), \
            "lacks cifar-10-batches-py/data_batch_1"
    archive = tmp_path / "labels.tar.gz"    # read_cifar accepts it; records.check_splits does not
    make_cifar_archive(str(archive), "cifar10", 50, 10, label_count=12)
    return archive.read_bytes(), "The train split of cifar10 has labels outside 0..9"


@pytest.mark.parametrize("case", ["not cifar", "labels out of range"])
def test_download_failing_validation_is_removed_and_another_mirror_then_works(tmp_path, cifar10_archive,
                                                                              case):
    payload, splits, classes = cifar10_archive
    wrong, expected = _wrong_content(case, tmp_path)
    data_dir = str(tmp_path / "d")
    with http_server({"/bad/c.tar.gz": [wrong], "/good/c.tar.gz": [payload]}) as (base, requests):
        with pytest.raises(DataError) as caught:
            prepare("cifar10", data_dir, url=f"{base}/bad/c.tar.gz", progress=False)
        message = str(caught.value)
        assert re.search(expected, message) and message.endswith(REMOVED), message
        assert files_under(data_dir) == [".cifar10.lock"]
        # The message's advice works as it stands: another mirror, nothing deleted by hand.
        record_dir = prepare("cifar10", data_dir, url=f"{base}/good/c.tar.gz", progress=False)
    assert requests == ["/bad/c.tar.gz", "/good/c.tar.gz"]
    _assert_records_equal_source(record_dir, splits, classes)
    # A validated download is kept for a conversion to start again from.
    assert (tmp_path / "d" / "cifar10" / "cifar-10-python.tar.gz").read_bytes() == payload


def test_users_archive_failing_validation_is_never_deleted(tmp_path):
    archive = tmp_path / "mine.tar.gz"
    make_cifar_archive(str(archive), "cifar10", 50, 10, leave_out=("test_batch",))
    before = archive.read_bytes()
    with pytest.raises(DataError, match="lacks cifar-10-batches-py/test_batch") as caught:
        prepare("cifar10", str(tmp_path / "d"), archive=str(archive), md5=hashlib.md5(before).hexdigest(),
                progress=False)
    assert "removed" not in str(caught.value)
    assert archive.read_bytes() == before


def test_download_interrupted_while_read_is_not_reused(tmp_path, cifar10_archive, monkeypatch):
    payload, splits, classes = cifar10_archive
    wrong, _ = _wrong_content("not cifar", tmp_path)
    data_dir = str(tmp_path / "d")

    def interrupted(*args):
        raise KeyboardInterrupt

    with http_server({"/bad/c.tar.gz": [wrong], "/good/c.tar.gz": [payload]}) as (base, requests):
        with monkeypatch.context() as patch:
            patch.setattr(cifar, "read_cifar", interrupted)     # Ctrl-C while the download is read
            with pytest.raises(KeyboardInterrupt):
                prepare("cifar10", data_dir, url=f"{base}/bad/c.tar.gz", progress=False)
        assert files_under(data_dir) == [".cifar10.lock"]
        record_dir = prepare("cifar10", data_dir, url=f"{base}/good/c.tar.gz", progress=False)
    assert requests == ["/bad/c.tar.gz", "/good/c.tar.gz"]
    _assert_records_equal_source(record_dir, splits, classes)


def test_kept_archive_failing_validation_says_to_delete_it(tmp_path, cifar10_archive):
    """An archive in the record folder that this run did not download (an earlier version of this
    program kept unvalidated downloads there) is used before any --url: it is not deleted, and the
    message says to delete it."""
    payload, splits, classes = cifar10_archive
    kept = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    kept.parent.mkdir()
    kept.write_bytes(_wrong_content("not cifar", tmp_path)[0])
    with http_server({"/c.tar.gz": [payload]}) as (base, requests):
        with pytest.raises(DataError) as caught:
            prepare("cifar10", str(tmp_path), url=f"{base}/c.tar.gz", progress=False)
        assert str(caught.value).endswith(f"{kept} was kept by an earlier run (or put there by hand) and "
                                          "is used before any --url: delete it and run again.")
        assert kept.exists() and requests == []
        kept.unlink()
        record_dir = prepare("cifar10", str(tmp_path), url=f"{base}/c.tar.gz", progress=False)
    _assert_records_equal_source(record_dir, splits, classes)


def test_full_disk_keeps_the_validated_download(tmp_path, cifar10_archive, monkeypatch):
    payload, splits, classes = cifar10_archive
    data_dir = str(tmp_path / "d")

    def no_space(path, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(records, "_write_split", no_space)
        with http_server({"/c.tar.gz": [payload]}) as (base, _):
            with pytest.raises(DataError, match="^The disk is full"):
                prepare("cifar10", data_dir, url=f"{base}/c.tar.gz", progress=False)
    assert files_under(data_dir) == [".cifar10.lock", "cifar10/cifar-10-python.tar.gz"]
    # The next run converts from the kept archive: the mirror is gone by then.
    record_dir = prepare("cifar10", data_dir, url=dead_url(), progress=False)
    _assert_records_equal_source(record_dir, splits, classes)


def test_interrupted_conversion_is_not_trusted(tmp_path, cifar10_archive, monkeypatch):
    payload, splits, classes = cifar10_archive
    archive = tmp_path / "c.tar.gz"
    archive.write_bytes(payload)
    md5 = hashlib.md5(payload).hexdigest()
    real_write = records._write_split

    def write_then_die(path, images, labels, progress, desc):
        if desc.endswith("test"):
            with open(path, "wb") as f:
                f.write(b"half a file")
            raise KeyboardInterrupt
        real_write(path, images, labels, progress, desc)

    monkeypatch.setattr(records, "_write_split", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        prepare("cifar10", str(tmp_path / "d"), archive=str(archive), md5=md5, progress=False)
    record_dir = str(tmp_path / "d" / "cifar10")
    assert _no_records(record_dir) and not records.is_complete(record_dir, "cifar10")
    monkeypatch.setattr(records, "_write_split", real_write)
    assert prepare("cifar10", str(tmp_path / "d"), archive=str(archive), md5=md5, progress=False) == record_dir
    _assert_records_equal_source(record_dir, splits, classes)


@pytest.mark.parametrize("damage", ["no meta", "short record", "other dataset", "meta without mean"])
def test_damaged_record_folder_is_converted_again(tmp_path, cifar10_archive, damage):
    payload, splits, classes = cifar10_archive
    archive = tmp_path / "c.tar.gz"
    archive.write_bytes(payload)
    md5 = hashlib.md5(payload).hexdigest()
    record_dir = prepare("cifar10", str(tmp_path), archive=str(archive), md5=md5, progress=False)
    meta_path = os.path.join(record_dir, records.META)
    train = os.path.join(record_dir, "train.tfrecord")
    if damage == "no meta":          # killed between renaming the records and writing meta.json
        os.remove(meta_path)
    elif damage == "short record":
        with open(train, "r+b") as f:
            f.truncate(os.path.getsize(train) - 10)
    else:
        meta = json.load(open(meta_path))
        if damage == "other dataset":
            meta["dataset"] = "cifar100"
        else:
            del meta["mean"]
        json.dump(meta, open(meta_path, "w"))
    assert not records.is_complete(record_dir, "cifar10")
    prepare("cifar10", str(tmp_path), archive=str(archive), md5=md5, progress=False)
    assert records.is_complete(record_dir, "cifar10")
    _assert_records_equal_source(record_dir, splits, classes)


@pytest.mark.parametrize("name,first_class", [("fashion-mnist", "T-shirt/top"), ("mnist", "0")])
def test_idx_datasets_from_their_files(tmp_path, name, first_class):
    rng = np.random.default_rng(3)
    source = {}
    os.makedirs(tmp_path / name)
    for split, n in (("train", 120), ("test", 30)):
        source[split] = (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n))
        write_idx(str(tmp_path / name), *IDX_FILES[split], *source[split])
    record_dir = prepare(name, str(tmp_path), progress=False)
    assert record_dir == str(tmp_path / name) and data.read_meta(record_dir)["dataset"] == name
    for split in ("train", "test"):
        images, labels, formats, heights, widths = read_records(os.path.join(record_dir, f"{split}.tfrecord"))
        assert images.shape[1:] == (28, 28, 1) and formats == {b"png"} and heights == widths == {28}
        np.testing.assert_array_equal(images[..., 0], source[split][0])
        np.testing.assert_array_equal(labels, source[split][1])
    meta = data.read_meta(record_dir)
    np.testing.assert_allclose(meta["mean"], [source["train"][0].mean()], rtol=1e-9)
    np.testing.assert_allclose(meta["std"], [source["train"][0].std()], rtol=1e-9)
    assert open(os.path.join(record_dir, "labels.txt")).read().splitlines()[0] == "0:" + first_class


def _write_idx_source(directory, n_train=60, n_test=20):
    """Write the four IDX files of an MNIST-format dataset, of random images, into ``directory``."""
    rng = np.random.default_rng(4)
    os.makedirs(directory, exist_ok=True)
    for n, names in ((n_train, IDX_FILES["train"]), (n_test, IDX_FILES["test"])):
        write_idx(str(directory), *names, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n))


def test_a_conversion_says_so_and_a_damaged_folder_is_converted_again_with_a_line(tmp_path, capsys):
    _write_idx_source(tmp_path / "fashion-mnist")
    record_dir = str(tmp_path / "fashion-mnist")
    prepare("fashion-mnist", str(tmp_path))
    assert capsys.readouterr().err == (f"fashion-mnist: converting to TFRecords in {record_dir} "
                                       "(once: later runs read them)\n")
    prepare("fashion-mnist", str(tmp_path))
    assert capsys.readouterr().err == ""                      # complete: used as it is, silently
    os.remove(os.path.join(record_dir, "test.tfrecord"))
    assert prepare("fashion-mnist", str(tmp_path)) == record_dir
    assert capsys.readouterr().err == (f"fashion-mnist: the records in {record_dir} are incomplete or damaged "
                                       "(test.tfrecord is missing): converting them again\n")
    assert records.is_complete(record_dir, "fashion-mnist")
    size = os.path.getsize(os.path.join(record_dir, "train.tfrecord"))
    os.truncate(os.path.join(record_dir, "train.tfrecord"), 100)
    prepare("fashion-mnist", str(tmp_path))
    assert f"(train.tfrecord has 100 bytes where meta.json records {size})" in capsys.readouterr().err
    os.remove(os.path.join(record_dir, records.META))
    prepare("fashion-mnist", str(tmp_path))
    assert "(meta.json is missing: a conversion did not finish)" in capsys.readouterr().err
    prepare("fashion-mnist", str(tmp_path), progress=False)   # a library caller that asked for quiet gets it
    os.remove(os.path.join(record_dir, "test.tfrecord"))
    prepare("fashion-mnist", str(tmp_path), progress=False)
    assert capsys.readouterr().err == ""


def test_cli_data_dir_defaults_to_the_folder_train_py_reads(tmp_path, monkeypatch, capsys):
    from config import config_train
    monkeypatch.chdir(tmp_path)
    _write_idx_source(tmp_path / config_train.data_dir / "fashion-mnist")  # found before Debian's package folder
    assert cli_main(["--dataset", "fashion-mnist"]) == 0
    record_dir = os.path.join(config_train.data_dir, "fashion-mnist")
    assert capsys.readouterr().out == record_dir + "\n"
    assert records.is_complete(str(tmp_path / record_dir), "fashion-mnist")


def test_fashion_mnist_damaged_idx_file_is_a_clear_error(tmp_path):
    images = np.zeros((10, 28, 28), np.uint8)
    os.makedirs(tmp_path / "fashion-mnist")
    write_idx(str(tmp_path / "fashion-mnist"), *IDX_FILES["train"], images, np.zeros(10))
    write_idx(str(tmp_path / "fashion-mnist"), *IDX_FILES["test"], images, np.zeros(9))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz holds 9 bytes of data where its header promises 10"):
        prepare("fashion-mnist", str(tmp_path), progress=False)
    assert _no_records(str(tmp_path))
    assert len(glob.glob(str(tmp_path / "fashion-mnist" / "*.gz"))) == 4      # the user's files are only read


def test_idx_files_in_the_shared_data_dir_are_taken_only_when_they_are_the_datasets_own(tmp_path, monkeypatch):
    # MNIST's and Fashion-MNIST's files have the same names: files in the data dir itself (the folder of
    # every dataset's records) are taken for the dataset whose published MD5s they have, and no other.
    # Here they stand for Fashion-MNIST's published files (its MD5s made theirs).
    _write_idx_source(tmp_path)
    for file in sum(IDX_FILES.values(), ()):
        monkeypatch.setitem(DATASETS["fashion-mnist"].idx.md5, file, fetch.md5_of(str(tmp_path / file)))
    with pytest.raises(DataError, match="Could not get train-images-idx3-ubyte.gz"):
        prepare("mnist", str(tmp_path), url=dead_url(), progress=False)
    assert _no_records(str(tmp_path))
    record_dir = prepare("fashion-mnist", str(tmp_path), url=dead_url(), progress=False)
    assert records.is_complete(record_dir, "fashion-mnist")


def test_cli_failure_is_one_line_and_nonzero(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "data", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--url", dead_url()],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        timeout=120)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    # What it set out to do, then why it could not: one line each.
    assert lines[0] == f"cifar10: converting to TFRecords in {tmp_path / 'cifar10'} (once: later runs read them)"
    assert len(lines) == 2 and lines[1].startswith("error: Could not get cifar-10-python.tar.gz"), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert _no_records(str(tmp_path))


def _idx_mirror(tmp_path, monkeypatch, test_labels=10):
    """Return the routes {"/fm/NAME": [bytes]} of a mirror of the four IDX files (10 blank images a
    split; ``test_labels`` labels in the test labels file), Debian's package folder hidden so that
    prepare downloads them."""
    info = DATASETS["fashion-mnist"]
    hidden = dataclasses.replace(info.idx, system_dir=str(tmp_path / "no-such-package"))
    monkeypatch.setitem(DATASETS, "fashion-mnist", dataclasses.replace(info, idx=hidden))
    files = tmp_path / "mirror"
    files.mkdir()
    images = np.zeros((10, 28, 28), np.uint8)
    write_idx(str(files), *IDX_FILES["train"], images, np.zeros(10))
    write_idx(str(files), *IDX_FILES["test"], images, np.zeros(test_labels))
    return {f"/fm/{p.name}": [p.read_bytes()] for p in files.iterdir()}


@pytest.mark.parametrize("name,published", [("fashion-mnist", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                                            ("mnist", "f68b3c2dcbeaaa9fbdd348bbdeb94873")])
def test_idx_download_checks_published_md5(tmp_path, monkeypatch, name, published):
    routes = _idx_mirror(tmp_path, monkeypatch)
    data_dir = str(tmp_path / "d")
    with http_server(routes) as (base, requests):
        with pytest.raises(DataError, match="MD5 is [0-9a-f]{32}, expected " + published):
            prepare(name, data_dir, url=f"{base}/fm", progress=False)
    assert requests == ["/fm/train-images-idx3-ubyte.gz"] * 2
    assert files_under(data_dir) == [f".{name}.lock"]


def test_fashion_mnist_download_failing_validation_is_removed(tmp_path, monkeypatch):
    routes = _idx_mirror(tmp_path, monkeypatch, test_labels=9)
    for route, (body,) in routes.items():   # files that pass their MD5 check but not the reader's
        monkeypatch.setitem(DATASETS["fashion-mnist"].idx.md5, route.split("/")[-1], hashlib.md5(body).hexdigest())
    data_dir = str(tmp_path / "d")
    with http_server(routes) as (base, _):
        with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz holds 9 bytes of data where") as caught:
            prepare("fashion-mnist", data_dir, url=f"{base}/fm", progress=False)
    assert str(caught.value).endswith(
        "The download (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz) has been removed, so no later run will use it.")
    assert files_under(data_dir) == [".fashion-mnist.lock"]


def test_full_disk_while_writing_records_is_a_clear_error(tmp_path, cifar10_archive, monkeypatch):
    payload = cifar10_archive[0]
    archive = tmp_path / "c.tar.gz"
    archive.write_bytes(payload)

    def no_space(path, *args):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records, "_write_split", no_space)
    with pytest.raises(DataError, match="^The disk is full: .*Free some space or choose another --data-dir"):
        prepare("cifar10", str(tmp_path / "d"), archive=str(archive), md5=hashlib.md5(payload).hexdigest(),
                progress=False)
    assert _no_records(str(tmp_path / "d"))


def test_download_folders_of_processes_gone_are_removed(tmp_path):
    """kill -9 in the middle of a download leaves its folder; the next start on this host removes it,
    and leaves those of live processes and of other hosts (a data dir shared across machines)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    folders = {name: tmp_path / name for name in (f".unvalidated.{host}.{gone.pid}",
                                                  f".unvalidated.{host}.{os.getppid()}",
                                                  ".unvalidated.another-host.1")}
    for folder in folders.values():
        folder.mkdir()
        (folder / "cifar-10-python.tar.gz").write_bytes(b"part of a download")
    with fetch.unvalidated_downloads(str(tmp_path)) as mine:
        assert os.path.basename(mine) == f".unvalidated.{host}.{os.getpid()}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(list(folders)[1:])

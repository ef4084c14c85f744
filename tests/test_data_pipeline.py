"""The tf.data pipeline (data.pipeline): order, augmentation, normalisation, determinism, resuming."""
import numpy as np
import pytest

from data import pipeline
from data.pipeline import _rotate, train_dataset
from data.records import read_meta, write_records
from tfcompat import tf

N_TRAIN, N_TEST, BATCH = 300, 60, 32
PER_EPOCH = N_TRAIN // BATCH          # 9 whole batches; 12 images left out of each epoch


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """(record_dir, train images, train labels, test images, test labels, mean, std): noise images,
    each distinct, so any output image can be traced back to its source."""
    rng = np.random.default_rng(5)
    splits = {s: (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n))
              for s, n in (("train", N_TRAIN), ("test", N_TEST))}
    record_dir = str(tmp_path_factory.mktemp("records"))
    write_records(record_dir, "cifar10", splits, [f"c{i}" for i in range(10)], progress=False)
    meta = read_meta(record_dir)
    return (record_dir, *splits["train"], *splits["test"],
            np.array(meta["mean"], np.float32), np.array(meta["std"], np.float32))


def _batches(make, count):
    """Return ``count`` (images, labels) batches (all if count is None) from a fresh iterator over the
    dataset ``make()`` builds in a new graph (``make`` may also return (dataset, feed_dict))."""
    with tf.Graph().as_default():
        made = make()
        ds, feed_dict = made if isinstance(made, tuple) else (made, None)
        iterator = tf.data.make_initializable_iterator(ds)
        batch = iterator.get_next()
        out = []
        with tf.Session() as sess:
            sess.run(iterator.initializer, feed_dict)
            while count is None or len(out) < count:
                try:
                    out.append(sess.run(batch))
                except tf.errors.OutOfRangeError:
                    break
    return out


def _to_uint8(images, mean, std):
    return np.rint(images * std + mean).astype(np.uint8)


def _source_indices(batches, train_images, mean, std):
    """Return the source index of every image of unaugmented batches, shape [batches, BATCH]."""
    where = {img.tobytes(): i for i, img in enumerate(train_images)}
    return np.array([[where[img.tobytes()] for img in _to_uint8(images, mean, std)] for images, _ in batches])


def _crops_and_flips(image):
    """All 81 crops of the 4-pixel reflection-padded image, each also mirrored: [162, H, W, C]."""
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)), mode="reflect")
    crops = np.stack([padded[y:y + 32, x:x + 32] for y in range(9) for x in range(9)])
    return np.concatenate([crops, crops[:, :, ::-1]])


def test_shapes_dtypes_and_labels(source):
    record_dir = source[0]
    with tf.Graph().as_default():
        images, labels = tf.data.make_one_shot_iterator(train_dataset(record_dir, BATCH, seed=0)).get_next()
        assert images.shape.as_list() == [BATCH, 32, 32, 3] and images.dtype == tf.float32
        assert labels.shape.as_list() == [BATCH] and labels.dtype == tf.int32
        with tf.Session() as sess:
            for _ in range(PER_EPOCH + 2):     # past the end of an epoch: the stream goes on
                x, y = sess.run([images, labels])
                assert np.isfinite(x).all() and y.min() >= 0 and y.max() < 10


def test_each_epoch_is_a_new_permutation_and_labels_follow_images(source):
    record_dir, train_images, train_labels, _, _, mean, std = source
    batches = _batches(lambda: train_dataset(record_dir, BATCH, seed=3, augment=False), 3 * PER_EPOCH)
    order = _source_indices(batches, train_images, mean, std)
    epochs = order.reshape(3, -1)
    for epoch in epochs:
        assert len(set(epoch)) == PER_EPOCH * BATCH       # no image twice within an epoch
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    for (images, labels), indices in zip(batches, order):
        np.testing.assert_array_equal(labels, train_labels[indices])
        np.testing.assert_allclose(images, (train_images[indices] - mean) / std, rtol=1e-5, atol=1e-5)


def test_augmentation_is_a_crop_or_flip_and_differs_between_epochs(source):
    record_dir, train_images, _, _, _, mean, std = source
    plain = _batches(lambda: train_dataset(record_dir, BATCH, seed=4, augment=False), 2 * PER_EPOCH)
    augmented = _batches(lambda: train_dataset(record_dir, BATCH, seed=4, augment=True), 2 * PER_EPOCH)
    order = _source_indices(plain, train_images, mean, std)
    seen = [{}, {}]                                        # per epoch: source index -> augmented image
    for position, ((images, _), indices) in enumerate(zip(augmented, order)):
        images = _to_uint8(images, mean, std)
        for image, index in zip(images, indices):
            seen[position // PER_EPOCH][index] = image
        if position % PER_EPOCH == 0:                      # check one batch per epoch image by image
            for image, index in zip(images, indices):
                candidates = _crops_and_flips(train_images[index])
                assert (candidates == image).all(axis=(1, 2, 3)).any()
    both = set(seen[0]) & set(seen[1])
    assert len(both) > 200
    differ = sum(not np.array_equal(seen[0][i], seen[1][i]) for i in both)
    assert differ > 0.95 * len(both)
    unchanged = sum(np.array_equal(seen[0][i], train_images[i]) for i in seen[0])
    assert unchanged < 0.05 * len(seen[0])


def test_training_batches_are_normalised_per_channel(source):
    batches = _batches(lambda: train_dataset(source[0], BATCH, seed=1), PER_EPOCH)
    images = np.concatenate([b[0] for b in batches]).reshape(-1, 3)
    np.testing.assert_allclose(images.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(images.std(axis=0), 1.0, atol=0.03)


def test_same_seed_same_stream_other_seed_other_stream(source):
    def first(seed):
        return _batches(lambda: train_dataset(source[0], BATCH, seed=seed, rotate=10.0), 3)

    a, b, c = first(11), first(11), first(12)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], c[0][0])


@pytest.mark.parametrize("start", [7, PER_EPOCH, 2 * PER_EPOCH + 4])
def test_start_batch_resumes_the_uninterrupted_stream(source, start):
    record_dir = source[0]
    full = _batches(lambda: train_dataset(record_dir, BATCH, seed=9, rotate=5.0), start + 4)

    def resumed():
        start_batch = tf.placeholder(tf.int64, [])
        return train_dataset(record_dir, BATCH, seed=9, rotate=5.0, start_batch=start_batch), {start_batch: start}

    tail = _batches(resumed, 4)
    for (x_full, y_full), (x_tail, y_tail) in zip(full[start:], tail):
        np.testing.assert_array_equal(x_full, x_tail)
        np.testing.assert_array_equal(y_full, y_tail)
    python_int = _batches(lambda: train_dataset(record_dir, BATCH, seed=9, rotate=5.0, start_batch=start), 1)
    np.testing.assert_array_equal(python_int[0][0], full[start][0])


def test_test_split_is_complete_in_order_and_not_augmented(source):
    record_dir, _, _, test_images, test_labels, mean, std = source
    batches = _batches(lambda: pipeline.test_dataset(record_dir, BATCH), None)
    assert [len(y) for _, y in batches] == [BATCH, N_TEST - BATCH]       # last partial batch kept
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), test_labels)
    images = np.concatenate([x for x, _ in batches])
    np.testing.assert_allclose(images, (test_images - mean) / std, rtol=1e-5, atol=1e-5)


def test_rotation_by_a_quarter_turn_matches_numpy():
    image = np.random.default_rng(0).random((1, 6, 6, 2)).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as sess:
        quarter = sess.run(_rotate(tf.constant(image), tf.constant([1.0]), 90.0))   # draw 1 -> +90 degrees
        none = sess.run(_rotate(tf.constant(image), tf.constant([0.5]), 90.0))      # draw 0.5 -> 0 degrees
    # A positive angle turns the picture counter-clockwise as displayed (row 0 at the top), as np.rot90.
    np.testing.assert_allclose(quarter[0], np.rot90(image[0], k=1), atol=1e-5)
    np.testing.assert_allclose(none, image, atol=1e-6)


def test_batch_larger_than_the_split_is_refused(source):
    with tf.Graph().as_default(), pytest.raises(ValueError, match="exceeds the 300 training examples"):
        train_dataset(source[0], N_TRAIN + 1, seed=0)

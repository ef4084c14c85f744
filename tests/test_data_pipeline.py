"""The tf.data pipeline (data.pipeline): uint8 batches, order, augmentation, determinism, resuming,
the batches' model keys, the normaliser and the prefetch to a device."""
import numpy as np
import pytest

from data import pipeline
from data.pipeline import _rotate, normalizer, to_device, train_dataset
from data.records import write_records
from tfcompat import tf

N_TRAIN, N_TEST, BATCH = 300, 60, 32
PER_EPOCH = N_TRAIN // BATCH          # 9 whole batches; 12 images left out of each epoch


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """(record_dir, train images, train labels, test images, test labels): noise images, each
    distinct, so any output image can be traced back to its source."""
    rng = np.random.default_rng(5)
    splits = {s: (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n))
              for s, n in (("train", N_TRAIN), ("test", N_TEST))}
    record_dir = str(tmp_path_factory.mktemp("records"))
    write_records(record_dir, "cifar10", splits, [f"c{i}" for i in range(10)], progress=False)
    return (record_dir, *splits["train"], *splits["test"])


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


def _source_indices(batches, train_images):
    """Return the source index of every image of unaugmented batches, shape [batches, BATCH]."""
    where = {img.tobytes(): i for i, img in enumerate(train_images)}
    return np.array([[where[img.tobytes()] for img in images] for images, _ in batches])


def _crops(image):
    """All 81 crops of the 4-pixel reflection-padded image: [81, H, W, C]."""
    height, width = image.shape[:2]
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)), mode="reflect")
    return np.stack([padded[y:y + height, x:x + width] for y in range(9) for x in range(9)])


def _crops_and_flips(image):
    """All 81 crops of the 4-pixel reflection-padded image, each also mirrored: [162, H, W, C]."""
    crops = _crops(image)
    return np.concatenate([crops, crops[:, :, ::-1]])


def test_shapes_dtypes_and_labels(source):
    record_dir = source[0]
    with tf.Graph().as_default():
        images, labels = tf.data.make_one_shot_iterator(train_dataset(record_dir, BATCH, seed=0)).get_next()
        assert images.shape.as_list() == [BATCH, 32, 32, 3] and images.dtype == tf.uint8
        assert labels.shape.as_list() == [BATCH] and labels.dtype == tf.int32
        with tf.Session() as sess:
            for _ in range(PER_EPOCH + 2):     # past the end of an epoch: the stream goes on
                y = sess.run(labels)
                assert y.min() >= 0 and y.max() < 10


def test_each_epoch_is_a_new_permutation_and_labels_follow_images(source):
    record_dir, train_images, train_labels, _, _ = source
    batches = _batches(lambda: train_dataset(record_dir, BATCH, seed=3, augment=False), 3 * PER_EPOCH)
    order = _source_indices(batches, train_images)
    epochs = order.reshape(3, -1)
    for epoch in epochs:
        assert len(set(epoch)) == PER_EPOCH * BATCH       # no image twice within an epoch
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    for (images, labels), indices in zip(batches, order):
        np.testing.assert_array_equal(labels, train_labels[indices])
        np.testing.assert_array_equal(images, train_images[indices])


def test_augmentation_is_a_crop_or_flip_and_differs_between_epochs(source):
    record_dir, train_images, _, _, _ = source
    plain = _batches(lambda: train_dataset(record_dir, BATCH, seed=4, augment=False), 2 * PER_EPOCH)
    augmented = _batches(lambda: train_dataset(record_dir, BATCH, seed=4, augment=True), 2 * PER_EPOCH)
    order = _source_indices(plain, train_images)
    seen = [{}, {}]                                        # per epoch: source index -> augmented image
    for position, ((images, _), indices) in enumerate(zip(augmented, order)):
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


@pytest.mark.parametrize("dataset,flips", [("mnist", False), ("fashion-mnist", True)])
def test_augmentation_mirrors_no_digit(tmp_path, dataset, flips):
    # A mirrored digit is another digit or none: MNIST's images are cropped and never flipped.
    rng = np.random.default_rng(6)
    train = (rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, 64))
    write_records(str(tmp_path), dataset, {"train": train, "test": train}, [str(i) for i in range(10)],
                  progress=False)
    plain = _batches(lambda: train_dataset(str(tmp_path), BATCH, seed=1, augment=False), 2)
    augmented = _batches(lambda: train_dataset(str(tmp_path), BATCH, seed=1, augment=True), 2)
    mirrored = 0
    for (images, _), indices in zip(augmented, _source_indices(plain, train[0])):
        for image, index in zip(images, indices):
            crops = _crops(train[0][index])
            as_crop, as_mirror = ((c == image).all(axis=(1, 2, 3)).any() for c in (crops, crops[:, :, ::-1]))
            assert as_crop or as_mirror
            mirrored += as_mirror
    assert (mirrored > 16) if flips else (mirrored == 0)   # about half of the 64 when it flips


def test_normalizer_uses_the_training_split_mean_and_std(source):
    record_dir, train_images, _, test_images, _ = source
    pixels = train_images.reshape(-1, 3).astype(np.float64)
    expected = (test_images - pixels.mean(axis=0)) / pixels.std(axis=0)
    normalize = normalizer(record_dir)
    with tf.Graph().as_default(), tf.Session() as sess:
        out = normalize(tf.constant(test_images))
        assert out.dtype == tf.float32
        np.testing.assert_allclose(sess.run(out), expected, rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="expects uint8 images, got float32"):
            normalize(out)      # normalising twice is refused


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


def test_with_key_each_batch_comes_with_the_model_key_of_its_position(source):
    """The key is model_key(seed, position), a resumed stream's too, and not the augmentation's (seed, p)."""
    def stream(start):
        return lambda: train_dataset(source[0], BATCH, seed=9, start_batch=start, with_key=True)

    keys = [key for _, _, key in _batches(stream(0), 3) + _batches(stream(2), 1)]
    with tf.Graph().as_default(), tf.Session() as sess:
        expected = sess.run([pipeline.model_key(9, p) for p in (0, 1, 2)])
    np.testing.assert_array_equal(keys, expected + expected[2:])
    assert len({tuple(k) for k in keys[:3]} | {(9, 0), (9, 1), (9, 2)}) == 6


def test_test_split_is_complete_in_order_and_not_augmented(source):
    record_dir, _, _, test_images, test_labels = source
    batches = _batches(lambda: pipeline.test_dataset(record_dir, BATCH), None)
    assert [len(y) for _, y in batches] == [BATCH, N_TEST - BATCH]       # last partial batch kept
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), test_labels)
    assert batches[0][0].dtype == np.uint8
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), test_images)


def test_rotation_by_a_quarter_turn_matches_numpy():
    image = np.random.default_rng(0).integers(0, 256, (1, 6, 6, 2), dtype=np.uint8)
    with tf.Graph().as_default(), tf.Session() as sess:
        quarter = sess.run(_rotate(tf.constant(image), tf.constant([1.0]), 90.0))   # draw 1 -> +90 degrees
        none = sess.run(_rotate(tf.constant(image), tf.constant([0.5]), 90.0))      # draw 0.5 -> 0 degrees
    # A positive angle turns the picture counter-clockwise as displayed (row 0 at the top), as np.rot90.
    assert quarter.dtype == np.uint8
    np.testing.assert_array_equal(quarter[0], np.rot90(image[0], k=1))
    np.testing.assert_array_equal(none, image)


def _rotated_bilinear(image, degrees):
    """NumPy reference: ``image`` [H, W, C] rotated about its centre by ``degrees`` (counter-clockwise
    as displayed), bilinear in float64, rounded; returns (rotated, mask of the pixels whose sampling
    point lies inside the image, where no border rule applies)."""
    height, width = image.shape[:2]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    y, x = np.mgrid[:height, :width].astype(np.float64)
    a = np.deg2rad(degrees)
    sx = cx + np.cos(a) * (x - cx) - np.sin(a) * (y - cy)
    sy = cy + np.sin(a) * (x - cx) + np.cos(a) * (y - cy)
    inside = (sx >= 0) & (sx <= width - 1) & (sy >= 0) & (sy <= height - 1)
    x0 = np.clip(np.floor(sx), 0, width - 2).astype(int)
    y0 = np.clip(np.floor(sy), 0, height - 2).astype(int)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    img = image.astype(np.float64)
    top = (1 - fx) * img[y0, x0] + fx * img[y0, x0 + 1]
    bottom = (1 - fx) * img[y0 + 1, x0] + fx * img[y0 + 1, x0 + 1]
    return np.rint((1 - fy) * top + fy * bottom), inside


def test_rotation_is_bilinear_and_rounded_to_nearest():
    images = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 2), dtype=np.uint8)
    draws = np.array([0.8, 0.1], np.float32)                # with 20 degrees at most: +12 and -16
    with tf.Graph().as_default(), tf.Session() as sess:
        rotated = sess.run(_rotate(tf.constant(images), tf.constant(draws), 20.0))
    for image, out, degrees in zip(images, rotated, (12.0, -16.0)):
        expected, inside = _rotated_bilinear(image, degrees)
        diff = np.abs(out.astype(np.float64) - expected)[inside]
        assert inside.mean() > 0.7
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01   # off by one only at float32 rounding ties


def test_to_device_leaves_cpu_streams_alone(source):
    with tf.Graph().as_default():
        ds = pipeline.test_dataset(source[0], BATCH)
        assert to_device(ds, None) is ds and to_device(ds, "/cpu:0") is ds


def test_prefetch_to_a_gpu_keeps_the_stream_and_its_resume(source):
    """The GPU path on a machine without one: the iterator is placed on the GPU, and soft placement
    runs it on the CPU, re-initialised with fed start_batch values like the training loop."""
    record_dir = source[0]
    full = _batches(lambda: train_dataset(record_dir, BATCH, seed=9, rotate=5.0), 9)
    with tf.Graph().as_default():
        start_batch = tf.placeholder(tf.int64, [])
        ds = to_device(train_dataset(record_dir, BATCH, seed=9, rotate=5.0, start_batch=start_batch), "/gpu:0")
        iterator = tf.data.make_initializable_iterator(ds)
        images, labels = iterator.get_next()
        assert "GPU" in images.device and images.dtype == tf.uint8
        with tf.Session(config=tf.ConfigProto(allow_soft_placement=True)) as sess:
            for start in (7, 0):
                sess.run(iterator.initializer, {start_batch: start})
                for x_full, y_full in full[start:start + 2]:
                    x, y = sess.run([images, labels])
                    np.testing.assert_array_equal(x, x_full)
                    np.testing.assert_array_equal(y, y_full)


def test_batch_larger_than_the_split_is_refused(source):
    with tf.Graph().as_default(), pytest.raises(ValueError, match="exceeds the 300 training examples"):
        train_dataset(source[0], N_TRAIN + 1, seed=0)

"""The tf.data input pipeline over a record folder written by ``data.prepare``.

Training stream: the training split is decoded once per iterator initialisation into one uint8
tensor held in memory; every batch is then a gather from it, so augmentation is applied after the
cache and is drawn afresh for every batch. Both the order and the augmentation are functions of
(seed, position in the stream) only, through stateless random ops:

- position ``p`` lies in epoch ``e = p // B`` (``B`` = batches per epoch, the remainder dropped),
  and is batch ``p % B`` of epoch ``e``'s permutation, drawn with the key (seed, -1 - e);
- its crops, flips and rotations are drawn with the key (seed, p);
- with ``with_key``, the batch comes with its model key, (seed, p) with ``MODEL_DRAWS`` folded in, for
  the random draws of the model that reads it (dropout masks): a function of (seed, p) too, and
  independent of the augmentation's.

So a run started at ``start_batch = k`` yields exactly batches k, k+1, ... of a run started at 0,
and skipping to ``k`` costs one permutation, not ``k`` decoded or augmented batches.

Both streams yield uint8 images, so a host-to-device copy moves a quarter of the bytes of float32:
the graph normalises them where they are used (``normalizer``, after the iterator), and ``to_device``
prefetches them to the GPU. The host work runs in parallel ``map`` stages: PNG decoding per image,
augmentation as a few batched ops per batch.
"""
import math
import zlib

import numpy as np

from data.datasets import DATASETS
from data.records import FEATURES, read_meta, record_path
from tfcompat import tf

_PAD = 4                 # WRN recipe: random crops of the image reflection-padded by 4 pixels
_INT64_MAX = 2 ** 63 - 1
# Folded into (seed, p) for the model key: it differs from the augmentation's key (seed, p) and from other
# draws keyed by the same seed (the Langevin noise's: optimizers/entropy_sgd.py).
MODEL_DRAWS = zlib.crc32(b"model")


def _decoder(height, width, channels):
    """Return f(serialised Example) -> (image uint8 [H, W, C], label int32)."""
    def decode(serialized):
        parsed = tf.io.parse_single_example(serialized, FEATURES)
        image = tf.io.decode_png(parsed["image/encoded"], channels=channels)
        image.set_shape([height, width, channels])
        return image, tf.cast(parsed["image/class/label"], tf.int32)

    return decode


def _records(record_dir, split, meta):
    """Return a dataset of decoded (image uint8, label int32) pairs of ``split``, in file order."""
    return (tf.data.TFRecordDataset(record_path(record_dir, split), buffer_size=8 << 20)
            .map(_decoder(*meta["image_shape"]), num_parallel_calls=tf.data.AUTOTUNE))


def normalizer(record_dir):
    """Return f(uint8 images [..., H, W, C]) -> float32 (x - mean) / std per channel, with the
    training split's mean and std (pixel units) from ``record_dir``'s meta.json.

    f builds its ops where it is called, so applied to an iterator's output they run on the device
    that consumes the batch. It refuses other dtypes: a float input is most likely normalised already.
    """
    meta = read_meta(record_dir)
    height, width, _ = meta["image_shape"]
    mean = np.asarray(meta["mean"], np.float32)
    inv_std = 1.0 / np.maximum(np.asarray(meta["std"], np.float32), 1e-6)
    # Image-shaped constants: broadcasting a [C] vector along an innermost axis of length C is 2-3
    # times slower in TensorFlow's CPU kernels than broadcasting one [H, W, C] block per image.
    mean, inv_std = (np.tile(v, (height, width, 1)) for v in (mean, inv_std))

    def normalize(images):
        if images.dtype != tf.uint8:
            raise ValueError(f"normalize expects uint8 images, got {images.dtype.name}")
        return (tf.cast(images, tf.float32) - tf.constant(mean)) * tf.constant(inv_std)

    return normalize


def _reflect(index, size):
    """Map indices in [-size + 1, 2 size - 2] into [0, size) by mirror reflection (no edge repeat),
    i.e. the indexing of a reflection-padded image."""
    index = tf.abs(index)
    return tf.where(index > size - 1, 2 * (size - 1) - index, index)


def _crop_flip(images, draws, flips=True):
    """Return a random padded crop of each image, mirrored left-right for half of them when ``flips``.

    ``images``: uint8 [N, H, W, C]; ``draws``: float [N, >=3] uniforms in [0, 1). The crop of the
    reflection-padded image and the flip become index vectors, so the whole batch costs two gathers
    on uint8 and no padded copy.
    """
    height, width = images.shape[1], images.shape[2]
    offsets = tf.cast(tf.floor(draws[:, :2] * (2 * _PAD + 1)), tf.int32) - _PAD    # [N, 2] in [-4, 4]
    flip = tf.cast(draws[:, 2:3] < (0.5 if flips else 0.0), tf.int32)              # [N, 1]
    rows = _reflect(offsets[:, :1] + tf.range(height)[tf.newaxis], height)
    across = tf.range(width)[tf.newaxis]
    cols_in_crop = across + flip * (width - 1 - 2 * across)      # j, or width - 1 - j when flipped
    cols = _reflect(offsets[:, 1:2] + cols_in_crop, width)
    images = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(images, cols, axis=2, batch_dims=1)


def _rotate(images, draws, max_degrees):
    """Return uint8 images [N, H, W, C] each rotated about its centre by a uniform angle in
    [-max_degrees, max_degrees] (``draws`` [N] in [0, 1)), bilinear, borders filled by reflection.

    The interpolation runs on float32 and is rounded to the nearest integer: the op applied to uint8
    truncates, which would darken every interpolated pixel by half a level on average.
    """
    height, width = float(images.shape[1]), float(images.shape[2])
    angles = (2.0 * draws - 1.0) * (max_degrees * math.pi / 180.0)
    cos, sin = tf.cos(angles), tf.sin(angles)
    # Output pixel (x, y) samples input (cos x - sin y + dx, sin x + cos y + dy): a rotation about the centre.
    dx = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2.0
    dy = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2.0
    zeros = tf.zeros_like(angles)
    transforms = tf.stack([cos, -sin, dx, sin, cos, dy, zeros, zeros], axis=1)
    rotated = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(images, tf.float32), transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
    # Bilinear weights are convex, so the result stays within [0, 255] and the cast cannot wrap.
    return tf.cast(tf.round(rotated), tf.uint8)


def model_key(seed, position):
    """Return the model key (int64 [2]) of the batch at ``position`` of the stream with ``seed``."""
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(position, tf.int64)])
    return tf.random.experimental.stateless_fold_in(key, tf.constant(MODEL_DRAWS, tf.int64))


def _batch_maker(images, labels, seed, augment, flips, rotate, with_key):
    """Return f(position, indices [batch]) -> (images uint8 [batch, H, W, C], labels int32 [batch]
    [, the model key int64 [2] with ``with_key``])."""
    def make(position, indices):
        batch = tf.gather(images, indices)
        draws = tf.random.stateless_uniform([tf.size(indices), 4], seed=tf.stack([seed, position]))
        if augment:
            batch = _crop_flip(batch, draws, flips)
        if rotate:
            batch = _rotate(batch, draws[:, 3], rotate)
        return (batch, tf.gather(labels, indices)) + ((model_key(seed, position),) if with_key else ())

    return make


def _positions(num_examples, batch_size, seed, start_batch):
    """Return an infinite dataset of (position int64, indices int32 [batch_size]) from ``start_batch``.

    Each epoch is one stateless permutation (key (seed, -1 - epoch)) cut into whole batches; the
    epoch holding ``start_batch`` skips its first positions as index vectors, before any image work.
    """
    per_epoch = num_examples // batch_size
    first_epoch = start_batch // per_epoch

    def epoch_positions(epoch):
        key = tf.stack([seed, -1 - epoch])
        order = tf.argsort(tf.random.stateless_uniform([num_examples], seed=key))   # int32
        batches = tf.reshape(order[:per_epoch * batch_size], [per_epoch, batch_size])
        positions = epoch * per_epoch + tf.range(per_epoch, dtype=tf.int64)
        skip = tf.where(tf.equal(epoch, first_epoch), start_batch - first_epoch * per_epoch, 0)
        return tf.data.Dataset.from_tensor_slices((positions, batches)).skip(skip)

    return tf.data.Dataset.range(first_epoch, _INT64_MAX).flat_map(epoch_positions)


def train_dataset(record_dir, batch_size, seed, augment=True, rotate=0.0, start_batch=0, with_key=False):
    """Return the infinite training dataset of (images uint8 [batch, H, W, C], labels int32 [batch]),
    with ``with_key`` also each batch's model key (int64 [2], the module docstring): the dropout key the
    model that trains on the batch takes (models/__init__.py).

    With ``augment``, images are randomly cropped from the 4-pixel reflection-padded image and, for a
    dataset whose labels a mirror keeps (``DatasetInfo.flips``: not MNIST's digits), flipped left-right
    for half of them; with ``rotate`` > 0, rotated by up to that many degrees (rounded to whole
    pixel levels). They are not normalised: apply ``normalizer(record_dir)`` where they are used.
    Batches are whole (the remainder of each epoch is dropped) and each epoch has its own order.
    The stream is a function of ``seed`` and the position only, so ``start_batch`` (an int, or an
    int64 scalar tensor fed when the iterator is initialised) resumes an interrupted run exactly.
    """
    meta = read_meta(record_dir)
    num_examples = meta["train_size"]
    if num_examples < batch_size:
        raise ValueError(f"batch_size {batch_size} exceeds the {num_examples} training examples "
                         f"in {record_dir}")
    seed = tf.constant(seed, tf.int64)
    start_batch = tf.cast(start_batch, tf.int64)
    # One element: the whole decoded split, so decoding happens once per iterator initialisation.
    decoded = _records(record_dir, "train", meta).batch(num_examples)

    def stream(images, labels):
        return (_positions(num_examples, batch_size, seed, start_batch)
                .map(_batch_maker(images, labels, seed, augment, DATASETS[meta["dataset"]].flips, rotate, with_key),
                     num_parallel_calls=tf.data.AUTOTUNE))

    return decoded.flat_map(stream).prefetch(tf.data.AUTOTUNE)


def test_dataset(record_dir, batch_size):
    """Return the finite test dataset of (images uint8 [batch, H, W, C], labels int32 [batch]): every
    test image exactly once, in file order, never augmented nor normalised (apply
    ``normalizer(record_dir)``), in batches of ``batch_size`` (the last one partial)."""
    test = _records(record_dir, "test", read_meta(record_dir))
    return test.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def to_device(dataset, device):
    """Return ``dataset`` ending with a prefetch into the memory of ``device`` when it names a GPU
    (e.g. "/gpu:0"), so that the host-to-device copy of the next batch overlaps the current step;
    ``dataset`` itself for None or any other device.

    It must be the last transformation. ``tf.data.make_initializable_iterator`` places the iterator
    with it, so ``get_next`` yields tensors already on ``device``, and re-initialising the iterator
    (with a new fed ``start_batch``) restarts the whole stream; TensorFlow refuses one-shot iterators
    over a GPU prefetch.
    """
    if device is None or tf.DeviceSpec.from_string(device).device_type != "GPU":
        return dataset
    return dataset.apply(tf.data.experimental.prefetch_to_device(device))

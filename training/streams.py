"""The training graph's data streams: initializable iterators over the infinite training stream.

Each stream is a deterministic function of its seed and the batch index it starts from (fed at
initialisation), so a resumed run reads exactly the batches an uninterrupted one would have read.
"""
from data.pipeline import to_device, train_dataset
from tfcompat import tf
from training import schedule


def train_iterator(record_dir, s, seed, start, device=None):
    """Return an initializable iterator over the infinite training stream with ``seed``, from batch
    ``start`` (an int64 placeholder fed at initialisation): (uint8 images, labels, model key) in batches of
    ``examples_per_batch(s)``; with a GPU ``device``, prefetched into its memory (the copy overlaps the step)."""
    ds = train_dataset(record_dir, schedule.examples_per_batch(s), seed, augment=s.augment, rotate=s.rotate,
                       start_batch=start, with_key=True)
    return tf.data.make_initializable_iterator(to_device(ds, device))

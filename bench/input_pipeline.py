"""Benchmark of the data package: conversion time of 60,000 images and training images/s.

Writes CIFAR-shaped synthetic records (50,000 train + 10,000 test, 32x32x3, 10 classes) to a
temporary folder, timing the conversion, then times the training pipeline alone (full augmentation:
crop + flip, uint8 batches of 128, what crosses to the device; the graph normalises them there)
after a warm-up that includes decoding the split once.

    .venv/bin/python -m bench.input_pipeline [--batches 400] [--rotate 0]

Synthetic images are blocky noise (8x8 random colours upsampled, plus pixel noise), which PNG
compresses about as well as real CIFAR photos; ``--noise`` uses pure noise, the worst case for PNG.
"""
import argparse
import os
import tempfile
import time

import numpy as np


from data.pipeline import train_dataset
from data.records import write_records
from tfcompat import tf


def synthetic_cifar(count, noise, rng):
    """Return (images uint8 [count, 32, 32, 3], labels int64 [count])."""
    if noise:
        images = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    else:
        coarse = rng.integers(0, 256, (count, 8, 8, 3)).astype(np.float32)
        fine = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2) + rng.normal(0, 8, (count, 32, 32, 3))
        images = np.clip(fine, 0, 255).astype(np.uint8)
    return images, rng.integers(0, 10, count)


def time_conversion(record_dir, noise):
    """Write 50,000 + 10,000 synthetic images as records; return the seconds the conversion took."""
    rng = np.random.default_rng(0)
    splits = {"train": synthetic_cifar(50000, noise, rng), "test": synthetic_cifar(10000, noise, rng)}
    start = time.perf_counter()
    write_records(record_dir, "cifar10", splits, [f"class{i}" for i in range(10)], progress=False)
    return time.perf_counter() - start


def time_pipeline(record_dir, batches, rotate):
    """Return (seconds to the first batch, training images/s over ``batches`` batches after warm-up)."""
    with tf.Graph().as_default():
        iterator = tf.data.make_initializable_iterator(
            train_dataset(record_dir, 128, seed=0, augment=True, rotate=rotate))
        images, labels = iterator.get_next()
        # Fetching a tiny reduction of the batch keeps the 0.4 MB copy into Python out of the figure.
        fetch = [tf.reduce_sum(tf.cast(images[:, 0, 0, 0], tf.int32)), tf.reduce_sum(labels)]
        with tf.Session() as sess:
            start = time.perf_counter()
            sess.run(iterator.initializer)
            sess.run(fetch)
            first = time.perf_counter() - start
            for _ in range(50):
                sess.run(fetch)
            start = time.perf_counter()
            for _ in range(batches):
                sess.run(fetch)
            return first, batches * 128 / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=400, help="timed batches of 128")
    parser.add_argument("--rotate", type=float, default=0.0, help="max rotation in degrees (0: off)")
    parser.add_argument("--noise", action="store_true", help="pure-noise images (PNG worst case)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        record_dir = os.path.join(tmp, "cifar10")
        seconds = time_conversion(record_dir, args.noise)
        print(f"conversion of 60,000 32x32x3 images: {seconds:.1f} s")
        first, rate = time_pipeline(record_dir, args.batches, args.rotate)
        print(f"training pipeline: first batch after {first:.1f} s (decodes 50,000 images); "
              f"{rate:,.0f} uint8 images/s at batch 128 (crop + flip"
              f"{f' + rotate {args.rotate:g} deg' if args.rotate else ''})")


if __name__ == "__main__":
    main()

"""Forward+backward throughput of every model on this machine, in images per second.

One training step without the weight update: logits in training mode, cross-entropy, gradients of
every trainable variable, and the batch-norm moving-average updates, on a fixed random batch held
in a constant (so no input pipeline is timed). Prints one line per model; compare runs only on
the same machine.

    .venv/bin/python -m bench.models [--batch 32] [--iters 5] [--models wrn,allcnn,lenet,mnistfc] [--precision bf16]
"""
import argparse
import os
import time
import types

import numpy as np


from data.pipeline import model_key
from models import MODEL_NAMES, get_model
from models.layers import PRECISIONS
from tfcompat import tf

# The image each family is meant for: CIFAR for WRN and All-CNN, (Fashion-)MNIST for LeNet.
IMAGE_SHAPES = {"wrn": (32, 32, 3), "allcnn": (32, 32, 3), "lenet": (28, 28, 1), "mnistfc": (28, 28, 1)}


def training_step(name, batch, config):
    """Return (op, trainable parameter count): one forward+backward pass of model ``name`` on a fixed batch
    (dropout keyed by a variable's value, which no graph optimisation folds into a constant)."""
    rng = np.random.RandomState(0)
    images = tf.constant(rng.randn(batch, *IMAGE_SHAPES[name]).astype(np.float32))
    labels = tf.constant(rng.randint(0, 10, size=batch).astype(np.int32))
    key = model_key(0, tf.train.get_or_create_global_step())
    logits = get_model(name)(images, True, 10, config, dropout_key=key)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    params = tf.trainable_variables()
    grads = tf.gradients(loss, params)
    count = sum(int(np.prod(p.shape.as_list())) for p in params)
    return tf.group(grads + tf.get_collection(tf.GraphKeys.UPDATE_OPS)), count


def images_per_second(name, batch, iters, config):
    """Return (images/s over ``iters`` timed steps after one warm-up step, parameter count)."""
    with tf.Graph().as_default():
        step, count = training_step(name, batch, config)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(step)  # warm-up: kernel selection and memory allocation
            start = time.perf_counter()
            for _ in range(iters):
                sess.run(step)
            return batch * iters / (time.perf_counter() - start), count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=5, help="timed steps per model (after one warm-up)")
    parser.add_argument("--models", default=",".join(MODEL_NAMES))
    parser.add_argument("--wrn-depth", type=int, default=28)
    parser.add_argument("--wrn-width", type=int, default=10)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="the dtype the models compute in (variables stay float32)")
    args = parser.parse_args()
    config = types.SimpleNamespace(wrn_depth=args.wrn_depth, wrn_width=args.wrn_width, dropout=0.0,
                                   data_format="NHWC", precision=args.precision)
    print("forward+backward in %s, batch %d, %d timed steps, %d CPU threads visible"
          % (args.precision, args.batch, args.iters, os.cpu_count()))
    for name in args.models.split(","):
        label = "wrn-%d-%d" % (args.wrn_depth, args.wrn_width) if name == "wrn" else name
        rate, count = images_per_second(name, args.batch, args.iters, config)
        print("%-10s %10d params %9.1f images/s" % (label, count, rate), flush=True)


if __name__ == "__main__":
    main()

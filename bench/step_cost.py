"""What one Entropy-SGD outer step costs, against the L momentum steps it replaces.

Times, side by side in one process on one small convolutional model and one batch size:
  entropy   one session.run of the EntropySGD train op (L gradient evaluations inside a tf.while_loop)
  momentum  L session.runs of tf.train.MomentumOptimizer (Nesterov) on the same model
  pyloop    L session.runs of a one-gradient Entropy-SGD step (EntropySGD with L = 1): the cost of driving
            the Langevin loop from Python, one session.run per inner step, as the seed implementation did
and prints entropy / momentum (target <= 1.05) and pyloop / momentum. Variants are measured in turns and
the median of the rounds is reported, so background load hits them alike.

    python3 bench/step_cost.py [--L 5 20] [--batch 64] [--rounds 7]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from optimizers import EntropySGD  # noqa: E402
from tfcompat import tf  # noqa: E402


def conv_loss_fn(batch, seed=0):
    """A small CNN (two 3x3 convolutions, global pooling, a dense layer) on synthetic 32x32x3 batches."""
    images = tf.random.stateless_uniform([batch * 4, 32, 32, 3], seed=[seed, 1])
    labels = tf.random.stateless_uniform([batch * 4], seed=[seed, 2], maxval=10, dtype=tf.int32)
    it = tf.data.make_one_shot_iterator(
        tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(batch).prefetch(4))
    with tf.variable_scope("cnn", reuse=tf.AUTO_REUSE):
        w1 = tf.get_variable("w1", [3, 3, 3, 32], initializer=tf.glorot_normal_initializer())
        w2 = tf.get_variable("w2", [3, 3, 32, 64], initializer=tf.glorot_normal_initializer())
        w3 = tf.get_variable("w3", [64, 10], initializer=tf.glorot_normal_initializer())

    def loss_fn():
        x, y = it.get_next()
        h = tf.nn.relu(tf.nn.conv2d(x, w1, strides=1, padding="SAME"))
        h = tf.nn.relu(tf.nn.conv2d(h, w2, strides=2, padding="SAME"))
        logits = tf.matmul(tf.reduce_mean(h, axis=[1, 2]), w3)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))

    return loss_fn


def build(variant, L, batch):
    """Returns (session, op, runs per outer step) for one variant, in a graph of its own."""
    graph = tf.Graph()
    with graph.as_default():
        loss_fn = conv_loss_fn(batch)
        if variant == "entropy":
            op, runs = EntropySGD(loss_fn, 0.1, L=L).minimize(loss_fn()), 1
        elif variant == "momentum":
            op, runs = tf.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True).minimize(loss_fn()), L
        else:
            op, runs = EntropySGD(loss_fn, 0.1, L=1).minimize(loss_fn()), L
        sess = tf.Session(graph=graph)
        sess.run(tf.global_variables_initializer())
    return sess, op, runs


def time_outer_step(sess, op, runs):
    start = time.perf_counter()
    for _ in range(runs):
        sess.run(op)
    return time.perf_counter() - start


def measure(L, batch, rounds, steps_per_round):
    variants = {name: build(name, L, batch) for name in ("entropy", "momentum", "pyloop")}
    for sess, op, runs in variants.values():  # warm up: graph optimisation, allocations
        for _ in range(2):
            time_outer_step(sess, op, runs)
    samples = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (sess, op, runs) in variants.items():
            samples[name].append(sum(time_outer_step(sess, op, runs) for _ in range(steps_per_round))
                                 / steps_per_round)
    for sess, _, _ in variants.values():
        sess.close()
    return {name: statistics.median(s) for name, s in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--L", type=int, nargs="+", default=[5, 20], help="Langevin steps to measure")
    parser.add_argument("--batch", type=int, default=64, help="batch size")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of measurement (median reported)")
    parser.add_argument("--steps", type=int, default=3, help="outer steps per round and variant")
    args = parser.parse_args()
    print("small CNN, batch %d, %d threads; seconds per outer step (median of %d rounds)"
          % (args.batch, os.cpu_count(), args.rounds))
    print("%4s %10s %10s %10s %18s %16s" % ("L", "entropy", "momentum", "pyloop", "entropy/momentum",
                                             "pyloop/momentum"))
    for L in args.L:
        t = measure(L, args.batch, args.rounds, args.steps)
        print("%4d %10.4f %10.4f %10.4f %18.3f %16.3f" % (L, t["entropy"], t["momentum"], t["pyloop"],
                                                         t["entropy"] / t["momentum"],
                                                         t["pyloop"] / t["momentum"]))


if __name__ == "__main__":
    main()

"""What one Entropy-SGD outer step costs, against the L momentum steps it replaces.

Times, side by side in one process on one model and one batch size:
  entropy   one session.run of the EntropySGD train op (L gradient evaluations inside a tf.while_loop),
            with the fused Langevin step (the default: the element-wise work once on all variables)
  unfused   the same with ``fused=False``: about ten small ops per variable and inner step
  entropy2, unfused2   a second session of each: two sessions of one graph time a few per cent apart on
            this machine, as much as fusing changes, so each side of fused / unfused pools two sessions
            and entropy / entropy2 and unfused / unfused2 show that noise floor
  drawn-in  the fused step with its Langevin noise drawn inside its XLA cluster, compiled with the
            arithmetic (``DrawnIn``; the optimizer draws it as a plain op before the cluster)
  momentum  L session.runs of tf.train.MomentumOptimizer (Nesterov) on the same model
  pyloop    L session.runs of a one-gradient Entropy-SGD step (EntropySGD with L = 1): the cost of driving
            the Langevin loop from Python, one session.run per inner step, as the seed implementation did
and prints entropy / momentum (target <= 1.05), pyloop / momentum, fused / unfused (target <= 1; each the
median of its two sessions' rounds), the two noise floors and drawn-in / fused; then the compute ops
(control flow, constants and identities left out) one traced outer step of entropy and unfused executes,
which does not depend on the machine's load.
Variants are measured in turns (each round starting with the next one) and the median of the rounds is
reported, so background load hits them alike. ``--model``: the small CNN (3 variables, where fusing
cannot show) and/or models of models/ (``wrn`` is WRN-10-1 here: 25 variables), on synthetic batches.

    python3 -m bench.step_cost [--L 5 20] [--batch 64] [--rounds 7] [--model cnn wrn]
"""
import argparse
import os
import statistics
import time
import types


from bench.models import IMAGE_SHAPES
from bench.turns import rotations
from data.pipeline import model_key
from models import MODEL_NAMES, get_model
from optimizers import EntropySGD
from tfcompat import tf
from training.trace import traced_op_types

VARIANTS = ("entropy", "unfused", "entropy2", "unfused2", "drawn-in", "momentum", "pyloop")
# Op types left out of the op count: the while_loop's control flow, constants, no-ops, identities, transfers.
CONTROL_OPS = frozenset(("Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond", "Const", "NoOp",
                         "Identity", "_Recv", "_Send"))
# Models of models/ at a CPU-sized configuration: WRN-10-1.
MODEL_CONFIG = types.SimpleNamespace(wrn_depth=10, wrn_width=1, dropout=0.0, data_format="NHWC", precision="fp32")


class DrawnIn(EntropySGD):
    """EntropySGD whose fused step draws its noise inside its XLA cluster, with the arithmetic that uses it."""

    def _normal(self, shape, key):
        """The same stateless draw as EntropySGD's, made inside the XLA cluster that uses it."""
        return tf.random.stateless_normal(shape, seed=key)


def small_cnn():
    """A small CNN (two 3x3 convolutions, global pooling, a dense layer): returns f(images) -> logits."""
    with tf.variable_scope("cnn", reuse=tf.AUTO_REUSE):
        w1 = tf.get_variable("w1", [3, 3, 3, 32], initializer=tf.glorot_normal_initializer())
        w2 = tf.get_variable("w2", [3, 3, 32, 64], initializer=tf.glorot_normal_initializer())
        w3 = tf.get_variable("w3", [64, 10], initializer=tf.glorot_normal_initializer())

    def logits(x):
        h = tf.nn.relu(tf.nn.conv2d(x, w1, strides=1, padding="SAME"))
        h = tf.nn.relu(tf.nn.conv2d(h, w2, strides=2, padding="SAME"))
        return tf.matmul(tf.reduce_mean(h, axis=[1, 2]), w3)

    return logits


def model_loss_fn(model, batch, seed=0):
    """Return loss_fn() -> the mean cross-entropy of ``model`` ("cnn": ``small_cnn``, else a model of
    models/ in training mode, its dropout keyed by the batch's position) on the next of synthetic batches
    cycled from a small in-memory set."""
    shape = IMAGE_SHAPES.get(model, (32, 32, 3))
    images = tf.random.stateless_uniform([batch * 4] + list(shape), seed=[seed, 1])
    labels = tf.random.stateless_uniform([batch * 4], seed=[seed, 2], maxval=10, dtype=tf.int32)
    it = tf.data.make_one_shot_iterator(
        tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(batch).enumerate().prefetch(4))
    if model == "cnn":
        cnn = small_cnn()
        logits = lambda x, key: cnn(x)  # noqa: E731
    else:
        model_fn = get_model(model)
        logits = lambda x, key: model_fn(x, True, 10, MODEL_CONFIG, dropout_key=key)  # noqa: E731

    def loss_fn():
        position, (x, y) = it.get_next()
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=logits(x, model_key(seed, position))))

    return loss_fn


def build(model, variant, L, batch):
    """Returns (session, op, runs per outer step, trainable variables) for one variant, in a graph of its own."""
    graph = tf.Graph()
    with graph.as_default():
        loss_fn = model_loss_fn(model, batch)
        loss = loss_fn()
        # Batch-norm statistics move in every step of every variant (EntropySGD runs loss_fn's own in its loop).
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            if variant.startswith(("entropy", "unfused")):
                op, runs = EntropySGD(loss_fn, 0.1, L=L, fused=variant.startswith("entropy")).minimize(loss), 1
            elif variant == "drawn-in":
                op, runs = DrawnIn(loss_fn, 0.1, L=L).minimize(loss), 1
            elif variant == "momentum":
                op, runs = tf.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True).minimize(loss), L
            else:
                op, runs = EntropySGD(loss_fn, 0.1, L=1).minimize(loss), L
        count = len(tf.trainable_variables())
        sess = tf.Session(graph=graph)
        sess.run(tf.global_variables_initializer())
    return sess, op, runs, count


def time_outer_step(sess, op, runs):
    start = time.perf_counter()
    for _ in range(runs):
        sess.run(op)
    return time.perf_counter() - start


def ops_per_step(sess, op):
    """The compute ops (types not in CONTROL_OPS) one traced run of ``op`` executes."""
    return sum(1 for t in traced_op_types(sess, op) if t and t not in CONTROL_OPS)


def measure(model, L, batch, rounds, steps_per_round):
    """Return ({variant: median seconds per outer step, and "fused", "per-variable": of both sessions of
    entropy and of unfused}, {entropy, unfused: compute ops per outer step}, trainable variable count)."""
    variants = {name: build(model, name, L, batch) for name in VARIANTS}
    for sess, op, runs, _ in variants.values():  # warm up: graph optimisation, allocations
        for _ in range(2):
            time_outer_step(sess, op, runs)
    samples = {name: [] for name in variants}
    for order in rotations(variants, rounds):
        for name in order:
            sess, op, runs, _ = variants[name]
            samples[name].append(sum(time_outer_step(sess, op, runs) for _ in range(steps_per_round))
                                 / steps_per_round)
    ops = {name: ops_per_step(*variants[name][:2]) for name in ("entropy", "unfused")}
    for sess, _, _, _ in variants.values():
        sess.close()
    medians = {name: statistics.median(s) for name, s in samples.items()}
    medians["fused"] = statistics.median(samples["entropy"] + samples["entropy2"])  # both sessions' rounds
    medians["per-variable"] = statistics.median(samples["unfused"] + samples["unfused2"])
    return medians, ops, variants["entropy"][3]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--L", type=int, nargs="+", default=[5, 20], help="Langevin steps to measure")
    parser.add_argument("--batch", type=int, default=64, help="batch size")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of measurement (median reported)")
    parser.add_argument("--steps", type=int, default=3, help="outer steps per round and variant")
    parser.add_argument("--model", nargs="+", choices=("cnn",) + MODEL_NAMES, default=["cnn"],
                        help="cnn: the small CNN; wrn (WRN-10-1), allcnn, lenet: the models of models/")
    args = parser.parse_args()
    for model in args.model:
        label = "wrn-%d-%d" % (MODEL_CONFIG.wrn_depth, MODEL_CONFIG.wrn_width) if model == "wrn" else model
        for L in args.L:
            t, ops, count = measure(model, L, args.batch, args.rounds, args.steps)
            if L == args.L[0]:
                print("%s (%d variables), batch %d, %d threads; seconds per outer step, median of %d rounds "
                      "(fused, unfused: of both sessions' rounds)"
                      % (label, count, args.batch, os.cpu_count(), args.rounds))
                print("%4s %8s %8s %8s %8s %17s %16s %14s %16s %16s %15s %16s"
                      % ("L", "fused", "unfused", "momentum", "pyloop", "entropy/momentum", "pyloop/momentum",
                         "fused/unfused", "entropy/entropy2", "unfused/unfused2", "drawn-in/fused",
                         "ops fused/unf"))
            print("%4d %8.4f %8.4f %8.4f %8.4f %17.3f %16.3f %14.3f %16.3f %16.3f %15.3f %16s"
                  % (L, t["fused"], t["per-variable"], t["momentum"], t["pyloop"], t["fused"] / t["momentum"],
                     t["pyloop"] / t["momentum"], t["fused"] / t["per-variable"], t["entropy"] / t["entropy2"],
                     t["unfused"] / t["unfused2"], t["drawn-in"] / t["fused"],
                     "%d/%d" % (ops["entropy"], ops["unfused"])), flush=True)


if __name__ == "__main__":
    main()

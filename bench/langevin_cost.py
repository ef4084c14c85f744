"""What the optimizer itself costs per gradient evaluation, on variables shaped like a model's.

The model is taken out: the loss is sum over variables of s_v * sum(v) (s_v a fixed random scalar), whose
gradient is a constant fill, so each variant's time is its optimizer's own element-wise work on the
model's parameters (WRN-28-10 by default: 36.5 M) plus one cheap pass to make the gradients:
  fused     an EntropySGD outer step (L inner steps in its tf.while_loop, then the outer update), with
            the fused Langevin step: flat vectors, the arithmetic compiled by XLA into one cluster, the
            noise drawn before it as a plain op
  drawn-in  the same with the noise drawn inside the cluster, compiled with the arithmetic
            (bench/step_cost.py's ``DrawnIn``)
  unfused   the same with ``fused=False``: about fifteen plain ops per variable and inner step
  momentum  L steps of tf.train.MomentumOptimizer (Nesterov), the optimizer of the same L evaluations
  draw      the Langevin noise alone: one N(0, I) draw of all parameters, which Entropy-SGD makes per
            evaluation, fused or not (on a CPU most of its cost; a GPU draws it in well under a ms)
Variants take turns (bench/turns.py); medians of --rounds rounds, in ms per gradient evaluation. The
column "less draw" compares the two Entropy-SGD steps less the draw, which both make: their own arithmetic
and data movement, what is left of them on a GPU, where the draw costs next to nothing; "drawn-in/fused"
says where the fused step's draw is cheaper, inside its XLA cluster or before it.
TF's BFC allocator is used on the CPU too, as it is on a GPU: TF's default CPU allocator maps fresh pages
for every buffer over 32 MB (the flat vectors are 146 MB for WRN-28-10), which would time page faults.

    python3 -m bench.langevin_cost [--depth 28 --width 10] [--L 5] [--rounds 7]
"""
import argparse
import os

os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # before TensorFlow loads: see the docstring
import statistics
import types

import numpy as np


from bench.step_cost import DrawnIn, time_outer_step
from bench.turns import rotations
from models import get_model
from optimizers import EntropySGD
from tfcompat import tf

VARIANTS = ("fused", "unfused", "momentum", "draw", "drawn-in")


def wrn_shapes(depth, width):
    """The shapes of WRN-depth-width's trainable variables (10 classes), from a graph built and dropped."""
    config = types.SimpleNamespace(wrn_depth=depth, wrn_width=width, dropout=0.0, data_format="NHWC",
                                   precision="fp32")
    with tf.Graph().as_default():
        get_model("wrn")(tf.zeros([1, 32, 32, 3]), True, 10, config)
        return [v.shape.as_list() for v in tf.trainable_variables()]


def build(variant, shapes, L):
    """Returns (session, op, session.runs per L gradient evaluations) for one variant, in its own graph."""
    graph = tf.Graph()
    with graph.as_default():
        rng = np.random.RandomState(0)
        variables = [tf.get_variable("v%d" % i, shape, initializer=tf.random_normal_initializer(seed=i))
                     for i, shape in enumerate(shapes)]
        scales = rng.uniform(-1.0, 1.0, size=len(shapes)).astype(np.float32)

        def loss_fn():
            return tf.add_n([s * tf.reduce_sum(v) for s, v in zip(scales, variables)])

        if variant == "draw":  # keyed by a variable, which no graph optimisation folds into a constant
            key = tf.get_variable("key", initializer=tf.constant([0, 0], tf.int64), trainable=False)
            op, runs = tf.random.stateless_normal([sum(int(np.prod(s)) for s in shapes)], seed=key).op, L
        elif variant == "momentum":
            op, runs = tf.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True).minimize(loss_fn()), L
        elif variant == "drawn-in":
            op, runs = DrawnIn(loss_fn, 0.1, L=L).minimize(loss_fn()), 1
        else:
            op, runs = EntropySGD(loss_fn, 0.1, L=L, fused=variant == "fused").minimize(loss_fn()), 1
        sess = tf.Session(graph=graph)
        sess.run(tf.global_variables_initializer())
    return sess, op, runs


def measure(shapes, L, rounds):
    """Return {variant: median ms per gradient evaluation}."""
    variants = {name: build(name, shapes, L) for name in VARIANTS}
    samples = {name: [] for name in VARIANTS}
    for sess, op, runs in variants.values():  # warm up: XLA compilation, allocations
        for _ in range(runs):
            sess.run(op)
    for order in rotations(VARIANTS, rounds):
        for name in order:
            samples[name].append(time_outer_step(*variants[name]) * 1e3 / L)
    for sess, _, _ in variants.values():
        sess.close()
    return {name: statistics.median(s) for name, s in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=28, help="WRN depth (6n + 4)")
    parser.add_argument("--width", type=int, default=10, help="WRN widening factor")
    parser.add_argument("--L", type=int, default=5, help="Langevin steps per outer step")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of measurement (median reported)")
    args = parser.parse_args()
    shapes = wrn_shapes(args.depth, args.width)
    t = measure(shapes, args.L, args.rounds)
    print("WRN-%d-%d: %d variables, %.2f M parameters, L = %d, %d threads; ms per gradient evaluation "
          "(median of %d rounds)" % (args.depth, args.width, len(shapes),
                                     sum(np.prod(s) for s in shapes) / 1e6, args.L, os.cpu_count(), args.rounds))
    print("%9s %9s %9s %9s %9s %17s %16s %15s %25s %15s"
          % ("fused", "unfused", "momentum", "draw", "drawn-in", "fused/momentum", "unfused/momentum",
             "fused/unfused", "less draw: fused/unfused", "drawn-in/fused"))
    print("%9.2f %9.2f %9.2f %9.2f %9.2f %17.2f %16.2f %15.2f %25.2f %15.2f"
          % (t["fused"], t["unfused"], t["momentum"], t["draw"], t["drawn-in"], t["fused"] / t["momentum"],
             t["unfused"] / t["momentum"], t["fused"] / t["unfused"],
             (t["fused"] - t["draw"]) / (t["unfused"] - t["draw"]), t["drawn-in"] / t["fused"]), flush=True)


if __name__ == "__main__":
    main()

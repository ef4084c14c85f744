"""Parle against data-parallel Entropy-SGD and SGD on N local devices: time and bytes exchanged per outer step.

Builds the real training graphs (training.graph.build, settings from train.py's own flag parser) of
  parle        -opt parle --replicas N: one Entropy-SGD replica per device, x̄ <- their mean each outer step
  entropy-sgd  -opt entropy-sgd -g N: one model, each of the L inner gradients averaged over N towers
  momentum     -opt momentum -g N: Nesterov momentum, each step's gradient averaged over N towers
for LeNet on Fashion-MNIST-shaped random records written here, on N CPU devices of one process
(training.devices.session_config, as train.py does without GPUs). Every device evaluates gradients of
``--batch`` examples (-g: batch_size is per device). Outer steps are timed in turns, median of the rounds.

Bytes exchanged are measured, not computed: one outer step runs with a full trace and the partition
graphs; every _Send node of a partition graph carries one tensor from its device to another, and its
bytes are the sizes of the tensor it forwards, summed over every execution of the producing node in the
step's trace (so a transfer inside the Langevin while_loop counts once per iteration). Between CPU
devices of one process TensorFlow hands the buffer over without a copy: these are the bytes that cross
a device boundary and that a GPU or a network link would carry. "input" is the part that is integer
tensors (the uint8 image and int32 label batches sent to the devices that use them).

    python3 -m bench.parle [--devices 2 3] [--L 5] [--batch 128] [--rounds 5] [--steps 2] [--smoke]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np


from bench.turns import rotations
from config import config_train
from data.datasets import FASHION_MNIST
from data.records import write_records
from tfcompat import tf
from training import devices, graph, settings
from training.dataset import record_info

MODES = ("parle", "entropy-sgd", "momentum")
SEND_OPS = ("_Send", "_HostSend")
INTEGER_TYPES = (tf.uint8, tf.int8, tf.int16, tf.int32, tf.int64)


def write_data(folder, train_size, test_size, seed=0):
    """Write random Fashion-MNIST-shaped records (28x28x1 uint8, 10 classes) under ``folder``; return the
    record folder."""
    rng = np.random.RandomState(seed)
    splits = {split: (rng.randint(0, 256, (n, 28, 28, 1)).astype(np.uint8), rng.randint(0, 10, n).astype(np.int64))
              for split, n in (("train", train_size), ("test", test_size))}
    return write_records(os.path.join(folder, "fashion-mnist"), "fashion-mnist", splits,
                         list(FASHION_MNIST.classes), progress=False)


def mode_settings(mode, n, L, batch, data_dir):
    """Return the train.py settings of ``mode`` on ``n`` devices (replicas for Parle, towers otherwise)."""
    parallel = ["--replicas", str(n)] if mode == "parle" else ["-g", str(n)]
    return settings.parse_settings(
        ["-d", "fashion-mnist", "-m", "lenet", "-opt", mode, "-L", str(L), "--data-dir", data_dir,
         "--set", "batch_size=%d" % batch, "--set", "augment=false"] + parallel, config_train)


def gradient_evaluations(s):
    """Minibatch gradients of ``batch_size`` examples that one outer step of settings ``s`` evaluates."""
    devices_used = s.replicas if s.optimizer == "parle" else s.gpus
    return devices_used * (s.L if s.optimizer in ("parle", "entropy-sgd") else 1)


class Variant(object):
    """One mode on ``n`` devices: its graph, an initialised session, and ``step()``: one outer step."""

    def __init__(self, mode, n, L, batch, record_dir):
        self.mode, self.n = mode, n
        self.s = mode_settings(mode, n, L, batch, os.path.dirname(record_dir))
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.g = graph.build(self.s, record_info(record_dir), record_dir)
            self.sess = tf.Session(config=devices.session_config(self.g.num_devices))
            self.sess.run(self.g.init)
            self.sess.run(self.g.train_init, {self.g.start_batch: 0})
            if self.g.sync_replicas is not None:
                self.sess.run(self.g.sync_replicas)

    def step(self, **kwargs):
        """Run one outer step; return its wall time in seconds."""
        start = time.perf_counter()
        self.sess.run(self.g.train_op, **kwargs)
        return time.perf_counter() - start

    def exchanged_bytes(self):
        """Run one traced outer step; return (bytes sent between devices, the part in integer tensors)."""
        metadata = tf.RunMetadata()
        self.step(options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE, output_partition_graphs=True),
                  run_metadata=metadata)
        return transfer_bytes(metadata)

    def close(self):
        self.sess.close()


def _output_sizes(step_stats):
    """{(device, node name, output slot): [(bytes, is integer) of each execution]} from a step's trace."""
    sizes = {}
    for dev in step_stats.dev_stats:
        for node in dev.node_stats:
            for out in node.output:
                desc = out.tensor_description
                dtype = tf.as_dtype(desc.dtype)
                elements = int(np.prod([d.size for d in desc.shape.dim]))
                sizes.setdefault((dev.device, node.node_name, out.slot), []).append(
                    (elements * dtype.size, dtype in INTEGER_TYPES))
    return sizes


def transfer_bytes(metadata):
    """Return (total, integer part) of the bytes the _Send nodes of ``metadata``'s partition graphs
    forwarded to another device during the traced step."""
    sizes = _output_sizes(metadata.step_stats)
    total = integer = 0
    for partition in metadata.partition_graphs:
        for node in partition.node:
            if node.op not in SEND_OPS:
                continue
            producer, _, slot = node.input[0].partition(":")
            device = node.attr["send_device"].s.decode()
            for size, is_integer in sizes.get((device, producer, int(slot or 0)), []):
                total += size
                integer += size if is_integer else 0
    return total, integer


def weight_bytes(variant):
    """Bytes of one copy of the model's trainable weights (float32)."""
    with variant.graph.as_default():
        return sum(v.shape.num_elements() * v.dtype.base_dtype.size for v in variant.g.model_vars if v.trainable)


def measure(variants, rounds, steps):
    """Return {variant: median seconds per outer step}, timing ``steps`` outer steps of each in turn."""
    for v in variants:  # warm up: graph optimisation, first allocations
        v.step()
    samples = {v: [] for v in variants}
    for order in rotations(variants, rounds):
        for v in order:
            samples[v].append(sum(v.step() for _ in range(steps)) / steps)
    return {v: statistics.median(t) for v, t in samples.items()}


def table(variants, seconds, exchanged):
    """Return the result table's lines, one row per variant."""
    head = "%-12s %7s %13s %10s %16s %12s %13s" % ("mode", "devices", "s/outer step", "grad evals",
                                                   "bytes exchanged", "of it input", "bytes/grad ev")
    rows = [head]
    for v in variants:
        evals = gradient_evaluations(v.s)
        total, integer = exchanged[v]
        rows.append("%-12s %7d %13.4f %10d %16d %12d %13.0f" % (v.mode, v.n, seconds[v], evals, total, integer,
                                                               total / float(evals)))
    return rows


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, nargs="+", default=[2, 3], help="device counts (default 2 3)")
    p.add_argument("--L", type=int, default=5, help="Langevin steps per outer step (default %(default)s)")
    p.add_argument("--batch", type=int, default=128, help="examples per device and minibatch (default %(default)s)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of measurement, median reported (default %(default)s)")
    p.add_argument("--steps", type=int, default=2, help="outer steps per round and variant (default %(default)s)")
    p.add_argument("--smoke", action="store_true", help="a few seconds: 2 devices, L 2, batch 16, 1 round of 1 step")
    args = p.parse_args(argv)
    if args.smoke:
        args.devices, args.L, args.batch, args.rounds, args.steps = [2], 2, 16, 1, 1
    if min(args.devices) < 2 or args.L < 1 or args.batch < 1 or args.rounds < 1 or args.steps < 1:
        p.error("--devices must be >= 2 (nothing is exchanged on one), --L, --batch, --rounds, --steps >= 1")
    return args


def main(argv=None):
    """Build every (mode, devices) variant, time and trace them; print the table; returns 0."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_parle_") as tmp:
        record_dir = write_data(tmp, train_size=max(args.devices) * args.batch * 4, test_size=args.batch)
        variants = [Variant(mode, n, args.L, args.batch, record_dir)
                    for n in args.devices for mode in MODES]
        seconds = measure(variants, args.rounds, args.steps)
        exchanged = {v: v.exchanged_bytes() for v in variants}
        print("LeNet, Fashion-MNIST-shaped random data, L %d, batch %d per device, CPU devices of one process "
              "on %d cores; one copy of the weights: %d bytes; seconds: median of %d rounds of %d outer steps"
              % (args.L, args.batch, os.cpu_count(), weight_bytes(variants[0]), args.rounds, args.steps))
        print("\n".join(table(variants, seconds, exchanged)))
        for v in variants:
            v.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

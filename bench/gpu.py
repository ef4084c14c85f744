"""Training speed of the project's real graph: momentum against Entropy-SGD, per precision, per input.

Writes CIFAR-shaped records (random uint8 32x32x3 images, 10 classes) to a temporary folder, then
builds, for every optimizer (momentum, Entropy-SGD at each --L) and mode (fp32, bf16, bf16+xla; also
fp32+xla on request):
  real       ``training.graph.build``: the train op ``train.py`` runs, fed by the tf.data pipeline
             from the records (decoding, augmentation, uint8 copy to the device, normalisation there)
  synthetic  the same model, optimizer and hyperparameters on one constant uint8 batch already in
             device memory: no input pipeline at all, so real / synthetic is the input's cost
Each variant has its own graph and session in this one process; after an untimed warm-up round (XLA
compilation, autotuning), the variants are timed in turns over --rounds rounds and the median is
reported, so background load hits them alike. A round gives every variant about --evals gradient
evaluations (an Entropy-SGD outer step is L of them). Ctrl-C, SIGTERM (``timeout``) or SIGHUP stops it
after the current turn: past the first round it prints the table of the rounds complete, then exits 130,
143 or 129.

Columns: images/s per gradient evaluation (batch * evaluations per outer step / seconds per outer
step); Entropy-SGD / momentum at the same mode and input; real / synthetic; GPU GiB: the variant's
variables and slots plus the peak of what its warm-up steps allocated on top of what the process held
before them (all variants share one allocator, so its raw peak would count the others' weights), "-"
without a GPU.

    .venv/bin/python bench/gpu.py                   # WRN-28-10, batch 128, L = 5 and 20 (a GPU's job)
    .venv/bin/python bench/gpu.py --smoke           # LeNet, batch 16, L = 2: under a minute on 2 CPU cores
    .venv/bin/python bench/gpu.py --depth 16 --width 4 --batch 64 --L 5 --modes fp32 bf16+xla --inputs real
"""
import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time

import numpy as np


from bench.turns import rotations
import config
import models
from data.pipeline import model_key, normalizer
from data.records import write_records
from optimizers import EntropySGD
from tfcompat import tf
from training import schedule
from training.dataset import record_info
from training.devices import local_devices, session_config
from training.exits import EXIT_STATUS
from training.graph import build
from training.optimizer_args import baseline_optimizer, esgd_arguments
from training.settings import model_settings, parse_settings
from training.stop import StopRequest

MODES = ("fp32", "bf16", "bf16+xla", "fp32+xla")
INPUTS = ("real", "synthetic")
# LeNet: the smallest graph to compile, as XLA compilation is most of a CPU run's time.
SMOKE = dict(model="lenet", batch=16, L=[2], rounds=1, evals=2, train_images=256)
GiB = float(1 << 30)


def write_synthetic_records(parent, train_images, test_images, seed=0):
    """Write random CIFAR-shaped records (uint8 32x32x3, 10 classes) under ``parent``; return the folder."""
    rng = np.random.RandomState(seed)
    splits = {split: (rng.randint(0, 256, (n, 32, 32, 3)).astype(np.uint8), rng.randint(0, 10, n).astype(np.int64))
              for split, n in (("train", train_images), ("test", test_images))}
    return write_records(os.path.join(parent, "cifar10"), "cifar10", splits, ["class%d" % i for i in range(10)],
                         progress=False)


def settings(args, optimizer, L, mode, data_dir):
    """The train.py settings of one variant, parsed from flags as train.py parses its own."""
    precision, _, xla = mode.partition("+")
    flags = ["-opt", optimizer, "-L", str(L), "-m", args.model, "-d", "cifar10", "--data-dir", data_dir,
             "--precision", precision, "--set", "batch_size=%d" % args.batch,
             "--set", "wrn_depth=%d" % args.depth, "--set", "wrn_width=%d" % args.width] + (["--xla"] if xla else [])
    return parse_settings(flags, config.config_train)


def synthetic_step(s, info, record_dir):
    """The training step of settings ``s`` on one constant uint8 batch in device memory, normalised there.

    Same model, optimizer arguments, weight decay (Entropy-SGD's own argument; classic L2 for momentum,
    as training.model_step adds it) and XLA scope as ``training.graph.build``; the learning rate is its base
    value (the schedule's few scalar ops cost nothing). Every Langevin step sees the same batch."""
    rng = np.random.RandomState(0)
    with tf.device(local_devices(1)[0]):
        images = tf.constant(rng.randint(0, 256, (s.batch_size,) + info.image_shape).astype(np.uint8))
        labels = tf.constant(rng.randint(0, info.num_classes, s.batch_size).astype(np.int32))
    model_fn, normalize = models.get_model(s.model), normalizer(record_dir)
    global_step = tf.train.get_or_create_global_step()

    def loss_fn():
        # Dropout keyed by the step (one batch, so no stream position): fresh masks, never a folded constant.
        key = model_key(s.seed, global_step)
        logits = model_fn(normalize(images), True, info.num_classes, model_settings(s), dropout_key=key)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))

    lr = tf.constant(schedule.schedule_settings(s)[0], tf.float32)
    with tf.xla.experimental.jit_scope() if s.xla else contextlib.nullcontext():
        loss = loss_fn()
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            if s.optimizer == "entropy-sgd":
                return EntropySGD(loss_fn, **esgd_arguments(s, lr, None)).minimize(loss, global_step=global_step)
            l2 = s.weight_decay * tf.add_n([tf.nn.l2_loss(v) for v in tf.trainable_variables()])
            return baseline_optimizer(s, lr).minimize(loss + l2, global_step=global_step)


class Variant(object):
    """One optimizer, mode and input: its graph, session and train op, and how to time it."""

    def __init__(self, args, optimizer, L, mode, source, record_dir):
        self.optimizer, self.L, self.mode, self.source = optimizer, L, mode, source
        s = settings(args, optimizer, L, mode, os.path.dirname(record_dir))
        info = record_info(record_dir)
        self.per_step = schedule.batches_per_step(s.optimizer, s.L)
        self.images_per_step = schedule.examples_per_batch(s) * self.per_step
        # About args.evals gradient evaluations per timed turn, whatever L is.
        self.steps = max(1, int(round(args.evals / float(self.per_step))))
        graph = tf.Graph()
        with graph.as_default():
            if source == "real":
                g = build(s, info, record_dir)
                self.op, init, devices = g.train_op, g.init, g.num_devices
            else:
                self.op = synthetic_step(s, info, record_dir)
                init, devices = tf.global_variables_initializer(), 1
            self.variable_bytes = sum(v.shape.num_elements() * v.dtype.base_dtype.size for v in tf.global_variables())
            self.sess = tf.Session(graph=graph, config=session_config(devices))
            self.sess.run(init)
            if source == "real":
                self.sess.run(g.train_init, {g.start_batch: 0})
        self.seconds, self.gib = [], None

    @property
    def name(self):
        return "momentum" if self.optimizer == "momentum" else "entropy-sgd L=%d" % self.L

    def turn(self):
        """Run ``self.steps`` outer steps; return the seconds per outer step."""
        start = time.perf_counter()
        for _ in range(self.steps):
            self.sess.run(self.op)
        return (time.perf_counter() - start) / self.steps

    def warm_up(self, gpu):
        """One untimed turn (XLA compilation, autotuning, the pipeline's first decode); on a GPU, records
        the memory the variant needs alone: its variables plus what the turn allocated beyond the rest."""
        if gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")
            before = tf.config.experimental.get_memory_info("GPU:0")["current"]
        self.turn()
        if gpu:
            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
            self.gib = (self.variable_bytes + peak - before) / GiB

    def images_per_second(self):
        """Images per gradient evaluation per second, from the median seconds per outer step."""
        return self.images_per_step / statistics.median(self.seconds)


def device_name():
    """The first GPU's name, or the CPU with its thread count."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return "CPU, %d threads" % os.cpu_count()


def measure(variants, rounds, gpu, stop):
    """Warm every variant up, then time them in turns (bench.turns.rotations) for ``rounds`` rounds.

    ``stop`` (a training.stop.StopRequest: Ctrl-C, SIGTERM or SIGHUP) is looked at before every turn: once it is
    requested, the samples of the unfinished round are dropped, so every variant keeps the same rounds.
    Returns the rounds complete: ``rounds``, or fewer (0 when stopped before the first was complete)."""
    for v in variants:
        if stop.requested:
            return 0
        v.warm_up(gpu)
    for done, order in enumerate(rotations(variants, rounds)):
        for v in order:
            if stop.requested:
                for each in variants:
                    del each.seconds[done:]
                return done
            v.seconds.append(v.turn())
        print("round %d/%d done" % (done + 1, rounds), file=sys.stderr, flush=True)
    return rounds


def table(variants):
    """The result lines: one per variant, grouped by input and mode, momentum first."""
    by_key = {(v.optimizer, v.L, v.mode, v.source): v for v in variants}
    lines = ["%-9s %-9s %-17s %12s %10s %10s %8s" % ("input", "mode", "optimizer", "images/s", "/momentum",
                                                     "/synthetic", "GPU GiB")]
    for v in variants:
        rate = v.images_per_second()
        momentum = by_key.get(("momentum", 0, v.mode, v.source))
        synthetic = by_key.get((v.optimizer, v.L, v.mode, "synthetic"))
        ratio = "-" if v.optimizer == "momentum" or momentum is None else "%.3f" % (rate / momentum.images_per_second())
        vs_synthetic = "-" if v.source == "synthetic" or synthetic is None \
            else "%.3f" % (rate / synthetic.images_per_second())
        lines.append("%-9s %-9s %-17s %12.1f %10s %10s %8s" % (v.source, v.mode, v.name, rate, ratio, vs_synthetic,
                                                                "-" if v.gib is None else "%.2f" % v.gib))
    return lines


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="a small quick run for CI: %s" % ", ".join("%s=%s" % kv for kv in SMOKE.items()))
    parser.add_argument("--model", choices=models.MODEL_NAMES, default="wrn")
    parser.add_argument("--depth", type=int, default=28, help="WRN depth")
    parser.add_argument("--width", type=int, default=10, help="WRN width")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--L", type=int, nargs="+", default=[5, 20], help="Entropy-SGD Langevin steps to measure")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES[:3]))
    parser.add_argument("--inputs", nargs="+", choices=INPUTS, default=list(INPUTS))
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--evals", type=int, default=20, help="gradient evaluations per variant and round")
    parser.add_argument("--train-images", type=int, default=2560, help="images in the written training split")
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    if min(args.L) < 1 or args.rounds < 1 or args.evals < 1 or args.train_images < args.batch:
        parser.error("--L, --rounds and --evals must be >= 1 and --train-images >= --batch")
    return args


def main():
    args = parse_args()
    gpu = bool(tf.config.list_physical_devices("GPU"))
    with StopRequest() as stop, tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        record_dir = write_synthetic_records(tmp, args.train_images, max(args.batch, args.train_images // 10))
        variants = [Variant(args, optimizer, L, mode, source, record_dir)
                    for source in args.inputs for mode in args.modes
                    for optimizer, L in [("momentum", 0)] + [("entropy-sgd", L) for L in args.L]
                    if not stop.requested]
        try:
            rounds = measure(variants, args.rounds, gpu, stop)
        finally:
            for v in variants:
                v.sess.close()
    if not rounds:
        print("bench/gpu.py: stopped (signal %d) before the first timed round was complete: no figures"
              % stop.signal, file=sys.stderr)
        return EXIT_STATUS[stop.signal]
    label = "wrn-%d-%d" % (args.depth, args.width) if args.model == "wrn" else args.model
    print("%s, batch %d, %s; median of %d rounds of ~%d gradient evaluations per variant%s"
          % (label, args.batch, device_name(), rounds, args.evals,
             "" if rounds == args.rounds else " (stopped by signal %d: %d of %d rounds)"
             % (stop.signal, rounds, args.rounds)))
    print("command: %s" % " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]))
    print("\n".join(table(variants)))
    return EXIT_STATUS[stop.signal] if stop.requested else 0


if __name__ == "__main__":
    sys.exit(main())

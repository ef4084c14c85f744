"""Restore a checkpoint and print its test loss, accuracy and error on a dataset's whole test split;
with ``--flatness``, also how flat the training loss is around its weights.

``python3 evaluate.py checkpoints/NAME`` (newest periodic save), ``checkpoints/NAME/best`` or a prefix
``checkpoints/NAME/model-STEP``. The model and dataset come from the run's ``settings.json`` when
there is one, else from config_train; flags override either. Batch-norm statistics are used as
re-estimated at x first when ``bn_reestimate`` is on, as train.py does before each evaluation: a
checkpoint saved between evaluations (periodic, or on a stop signal) holds moving averages collected
with dropout on, and for Entropy-SGD at the Langevin iterates x'. The pass reads the training batches
that the run's own evaluation at the checkpoint's step reads, so a checkpoint of an evaluated step (the
final one, best/) gives that evaluation's numbers (for an SGD, momentum or Adam run trained before
2026-11-30, which evaluated with its moving averages, with ``--set bn_reestimate=false``).

Flatness (``--flatness``) is measured on the training cross-entropy of one fixed batch of
``--flatness-batch`` training images (the first batch of the un-augmented training stream drawn with
``--seed``), model in inference mode (no dropout, batch norm reading the statistics of the evaluation), so
the loss is a deterministic function of the weights:

- the ``--hessian-k`` largest Hessian eigenvalues (analysis.hessian: Lanczos on Hessian-vector
  products, ``--hessian-iters`` steps from a start drawn with ``--seed``);
- the same for the filter-normalised Hessian D H D (D: every weight times the norm of its filter), from
  the same start. Scaling a filter that feeds batch norm by a leaves the function unchanged but divides
  its rows and columns of the raw Hessian by a; D H D is unchanged, so it compares flatness rather than weight norms;
- the local-entropy estimate of Entropy-SGD (analysis.local_entropy: L Langevin steps from x with the
  Langevin settings L, g0 as gamma, langevin_lr, epsilon, mu_decay, momentum and nesterov of the run,
  or of ``--set``; the noise is drawn with ``--seed``). Weight decay is left out of every measurement:
  they are of the cross-entropy alone, the same function for every optimizer.

``--json PATH`` also writes every number printed (atomically), with what they were measured on: the
SHA-256 of the checkpoint's files, the batch-norm pass (``batch_norm``: its batches and first batch, or
null for moving averages), the options given (``options``) and ``version``, the RESULTS_VERSION of the
rules that computed them.
"""
import glob
import os
import sys
import types

from analysis.hessian import build_hvp, filter_scale, top_eigenvalues
from analysis.local_entropy import build_local_entropy, measure
from config import config_train
from data import DataError
from data.pipeline import normalizer, train_dataset
from models import MODEL_NAMES, get_model
from tfcompat import first_line, tf
from training import checkpoint_files, checkpoints, evaluation, evaluation_graph, schedule, schema, settings
from training.console import say
from training.dataset import prepare_records, record_info
from training.stop import run_stoppable

PROG = "evaluate.py"
# How evaluate.py computes its numbers, recorded in --json: raise it with any change that gives other
# numbers for the same checkpoint and options, here or in what it calls (training.evaluation_graph,
# schedule.bn_start_batch, analysis.hessian, analysis.local_entropy, the models); experiments/runner.py
# measures a result of another version again.
# 2: batch norm re-estimated for every optimizer, on the batches of the run's own evaluation.
RESULTS_VERSION = 2


def parse_args(argv):
    """Return (parser, parsed command line); errors are one line with exit status 2."""
    p = settings.OneLineParser(prog=PROG, description="Print test loss, accuracy and error of a checkpoint "
                                                      "(and, with --flatness, Hessian and local-entropy flatness).")
    p.add_argument("path", help="checkpoint prefix (DIR/model-STEP) or a run directory (or its best/)")
    p.add_argument("-d", "--dataset", choices=schema.DATASET_NAMES, help="dataset (default: the run's)")
    p.add_argument("-m", "--model", choices=MODEL_NAMES, help="model (default: the run's)")
    p.add_argument("--data-dir", help="where archives and TFRecords live (default: the run's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config_train attribute, e.g. --set batch_size=500 or --set L=20")
    p.add_argument("--flatness", action="store_true",
                   help="also measure the top Hessian eigenvalues (raw, and filter-normalised: "
                        "unchanged by rescaling a filter that feeds batch norm, so not a measure of "
                        "weight norms) and the local entropy of the training loss")
    p.add_argument("--flatness-batch", type=int, default=2048, metavar="N",
                   help="training images in the fixed batch of the flatness measurements (default %(default)s)")
    p.add_argument("--hessian-k", type=int, default=5, metavar="K",
                   help="how many of the largest Hessian eigenvalues (default %(default)s)")
    p.add_argument("--hessian-iters", type=int, default=30, metavar="I",
                   help="Lanczos steps, at least K (default %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the flatness batch, the Lanczos start and the Langevin noise (default %(default)s)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = p.parse_args(argv)
    if args.flatness_batch < 1 or args.hessian_k < 1:
        p.error("--flatness-batch and --hessian-k must be >= 1")
    if args.hessian_iters < args.hessian_k:
        p.error("--hessian-iters (%d) must be at least --hessian-k (%d)" % (args.hessian_iters, args.hessian_k))
    return p, args


def measurement_options(args):
    """Return the options of parsed ``args`` that decide the numbers (all but the checkpoint's path and
    --json), as recorded in --json."""
    return {k: v for k, v in vars(args).items() if k not in ("path", "json")}


def saved_settings(folder, keys=None):
    """Return the settings dict of config_train, then of the run's settings.json in ``folder`` (its
    ``keys`` only, when given)."""
    values = settings.config_defaults(config_train)
    saved = checkpoints.read_settings(folder) or {}
    values.update({k: v for k, v in saved.items() if keys is None or k in keys})
    return values


def evaluation_settings(parser, args, folder):
    """Return the settings namespace: config_train, then the run's settings.json, then the flags. What is
    taken from the run: the settings marked EVALUATE (its model, its data and the batch-norm pass) and
    FLATNESS (the Langevin loop of the local-entropy estimate) in training.schema."""
    values = saved_settings(folder, schema.keys(schema.EVALUATE, schema.FLATNESS))
    try:
        settings.apply_overrides(values, args.set)
    except ValueError as e:
        parser.error(str(e))
    for key in ("dataset", "model", "data_dir"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    s = types.SimpleNamespace(**values)
    problem = settings.first_problem(s)
    if problem:
        parser.error(problem)
    if args.flatness and s.L < 1:
        parser.error("the local-entropy estimate needs L >= 1 (use --set L=20)")
    return s


def run_settings(folder):
    """Return the run's own settings: config_train, then all of its settings.json, without the flags (a
    ``--set L=20`` for the local-entropy estimate does not change where its evaluations read)."""
    return types.SimpleNamespace(**saved_settings(folder))


def bn_start(prefix, s, train_size):
    """Return the batch of the re-estimation stream at which the evaluation of the run of settings ``s``
    (``run_settings``) at the step of checkpoint ``prefix`` starts (schedule.bn_start_batch)."""
    step = int(tf.train.load_checkpoint(prefix).get_tensor("global_step"))
    every = schedule.every_steps(s.eval_every, schedule.examples_per_batch(s),
                                 schedule.batches_per_step(s.optimizer, s.L), train_size)
    return schedule.bn_start_batch(step, every, s.bn_reestimate_batches)


def evaluate_checkpoint(prefix, s, record_dir, bn_start_batch):
    """Build the evaluation graph, restore the model variables of ``prefix``, re-estimate batch norm from
    batch ``bn_start_batch`` of its stream (when the graph has the pass); return (loss, accuracy, the
    pass as recorded in --json: {"batches", "start_batch"}, or None for moving averages)."""
    info = record_info(record_dir)
    model_fn = get_model(s.model)
    with tf.Graph().as_default():
        test = evaluation_graph.evaluation_tower(model_fn, record_dir, s, info.num_classes)
        model_vars = tf.global_variables()
        moving_vars = [v for v in model_vars if v not in tf.trainable_variables()]
        bn = evaluation_graph.bn_reestimation(model_fn, record_dir, s, info.num_classes, moving_vars)
        with tf.Session() as sess:
            checkpoints.restore_subset(sess, prefix, model_vars)
            sess.run(tf.local_variables_initializer())
            reestimate_batch_norm(sess, bn, bn_start_batch, s.bn_reestimate_batches)
            loss, accuracy = evaluation.evaluate(sess, test)
    record = None if bn is None else {"batches": s.bn_reestimate_batches, "start_batch": bn_start_batch}
    return loss, accuracy, record


def build_flatness(s, record_dir, batch_size, seed):
    """Build (graph only) the flatness measurements of the current graph; return their handles.

    The fixed batch is fed through placeholders (``images``, ``labels``); ``batch`` fetches it once from
    the training stream, normalised. The model's variables are collected before the local-entropy probe
    adds its own, so that ``saver`` restores the model alone (the probe's variables are not in a
    checkpoint; ``init`` initialises them). evaluate_checkpoint, run first, has already checked that the
    checkpoint holds them.
    """
    info = record_info(record_dir)
    model_fn = get_model(s.model)
    stream = train_dataset(record_dir, batch_size, seed, augment=False).take(1)
    raw_images, raw_labels = tf.data.make_one_shot_iterator(stream).get_next()
    batch = (normalizer(record_dir)(raw_images), raw_labels)
    images = tf.placeholder(tf.float32, [batch_size] + list(info.image_shape), "flatness_images")
    labels = tf.placeholder(tf.int32, [batch_size], "flatness_labels")

    def loss_fn():
        """The fixed batch's mean cross-entropy, model in inference mode: a function of the weights only."""
        logits = model_fn(images, False, info.num_classes, settings.model_settings(s))
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))

    known = set(tf.global_variables())
    loss = loss_fn()
    model_vars = [v for v in tf.global_variables() if v not in known]
    weights = [v for v in model_vars if v in set(tf.trainable_variables())]
    # the same batch-norm statistics as the test metrics: re-estimated at x
    bn = evaluation_graph.bn_reestimation(model_fn, record_dir, s, info.num_classes,
                                          [v for v in model_vars if v not in weights])
    hvp = build_hvp(loss, weights)
    probe = build_local_entropy(loss_fn, weights, L=s.L, gamma=s.g0, langevin_lr=s.langevin_lr,
                                epsilon=s.epsilon, mu_decay=s.mu_decay, momentum=s.momentum,
                                nesterov=s.nesterov, weight_decay=0.0, seed=seed)
    return types.SimpleNamespace(batch=batch, images=images, labels=labels, loss=loss, hvp=hvp, probe=probe,
                                 bn=bn, init=tf.variables_initializer(probe.variables + tf.local_variables()),
                                 saver=tf.train.Saver(model_vars))


def reestimate_batch_norm(sess, bn, start, batches):
    """Set the moving statistics to their mean over ``batches`` training batches at x from batch ``start``
    of the re-estimation stream (when ``bn``)."""
    if bn is not None:
        sess.run(bn.init, {bn.start_batch: start})
        bn.run(sess, batches)


def run_flatness(sess, f, prefix, k, iters, seed, bn_start_batch, bn_batches):
    """Restore the model variables of ``prefix`` into the graph of ``build_flatness`` and measure.

    Returns {``train_loss``: f(x) on the batch, ``hessian_top``: the k largest Hessian eigenvalues,
    largest first, ``hessian_top_normalised``: those of the filter-normalised Hessian D H D, from the
    same Lanczos start, ``local_entropy``: analysis.local_entropy.STATS}. The restored weights are left as
    they were (the probe writes x back after its Langevin steps).
    """
    sess.run(f.init)
    f.saver.restore(sess, prefix)
    reestimate_batch_norm(sess, f.bn, bn_start_batch, bn_batches)
    images, labels = sess.run(f.batch)
    feed = {f.images: images, f.labels: labels}
    eigenvalues = top_eigenvalues(sess, f.hvp, k=k, iters=iters, seed=seed, feed_dict=feed)
    # D at the restored weights x: the filter norms of the point measured
    normalised = top_eigenvalues(sess, f.hvp, k=k, iters=iters, seed=seed, feed_dict=feed,
                                 scale=filter_scale(sess.run(f.hvp.var_list)))
    return {"train_loss": float(sess.run(f.loss, feed)),
            "hessian_top": [float(e) for e in eigenvalues],
            "hessian_top_normalised": [float(e) for e in normalised],
            "local_entropy": measure(sess, f.probe, feed)}


def measure_flatness(prefix, s, record_dir, args, bn_start_batch):
    """Return the flatness results of checkpoint ``prefix`` (``run_flatness``'s) with the settings used."""
    with tf.Graph().as_default() as flatness_graph:
        f = build_flatness(s, record_dir, args.flatness_batch, args.seed)
        flatness_graph.finalize()  # measuring adds no ops: any attempt is a bug, caught here
        with tf.Session() as sess:
            results = run_flatness(sess, f, prefix, args.hessian_k, args.hessian_iters, args.seed,
                                   bn_start_batch, s.bn_reestimate_batches)
    results.update(batch=args.flatness_batch, seed=args.seed, hessian_iters=args.hessian_iters,
                   parameters=f.hvp.dim, langevin={k: getattr(s, k) for k in schema.keys(schema.FLATNESS)})
    return results


def flatness_lines(r):
    """Return the printed lines of the flatness results ``r`` (from ``measure_flatness``)."""
    le, lv = r["local_entropy"], r["langevin"]
    return ["training loss %.4f on a fixed batch of %d training images (seed %d, model in inference mode)"
            % (r["train_loss"], r["batch"], r["seed"]),
            "hessian top-%d eigenvalues (%d Lanczos steps, %d parameters): %s"
            % (len(r["hessian_top"]), r["hessian_iters"], r["parameters"],
               "  ".join("%.4g" % e for e in r["hessian_top"])),
            "filter-normalised hessian top-%d eigenvalues (same start and steps): %s"
            % (len(r["hessian_top_normalised"]), "  ".join("%.4g" % e for e in r["hessian_top_normalised"])),
            "local entropy (L=%d, gamma=%g, langevin_lr=%g, epsilon=%g): |x - mu| %.4g  "
            "mean Langevin loss %.4f  |x - x'| %.4g"
            % (lv["L"], lv["g0"], lv["langevin_lr"], lv["epsilon"], le["x_mu_norm"], le["inner_loss"],
               le["x_xprime_norm"])]


def choose_checkpoint(path):
    """Return (the checkpoint to evaluate, [(prefix, why)] of newer ones that cannot be read): ``path``
    itself for a prefix, the newest save that reads for a folder (a run directory or its best/).
    The prefix is None when there is none; read here in full, a damaged one fails here and not half-way."""
    candidates = checkpoint_files.newest_first(path) if os.path.isdir(path) else [path]
    return checkpoints.first_restorable(candidates, checkpoints.read_all)


def main(argv=None):
    """Evaluate the checkpoint named on the command line; return the process exit status (130, 143 or 129
    with one line when Ctrl-C, SIGTERM or SIGHUP stops it: nothing is written then)."""
    return run_stoppable(lambda: run_command(argv), "%s: interrupted; no --json file written" % PROG)


def run_command(argv):
    """Evaluate the checkpoint named by the command line ``argv``; return the exit status."""
    parser, args = parse_args(argv)
    folder = args.path if os.path.isdir(args.path) else os.path.dirname(args.path) or "."
    prefix, skipped = choose_checkpoint(args.path)
    tried = checkpoints.skipped_text(skipped, folder)
    if prefix is None:
        if not skipped or not glob.glob(glob.escape(skipped[0][0]) + ".*"):
            return settings.fail(PROG, "no checkpoint at %s (give DIR/model-STEP or a run directory)" % args.path)
        return settings.fail(PROG, "cannot read the checkpoint at %s: %s" % (args.path, tried))
    if skipped:
        say("%s: skipped %s; evaluating %s" % (PROG, tried, os.path.relpath(prefix, folder)))
    try:
        s = evaluation_settings(parser, args, folder)
        record_dir = prepare_records(s)
    except (ValueError, DataError) as e:  # a damaged settings.json, data that cannot be prepared
        return settings.fail(PROG, str(e))
    try:
        # hashed before it is read: a save replaced meanwhile leaves the old one's digest, which the
        # study runner then finds out of date and measures again
        digest = checkpoint_files.digest(prefix)
        start = bn_start(prefix, run_settings(folder), record_info(record_dir).train_size)
        loss, accuracy, batch_norm = evaluate_checkpoint(prefix, s, record_dir, start)
        print("test loss %.4f  accuracy %.4f  error %.2f%%  (%s on %s, %s)"
              % (loss, accuracy, 100.0 * (1.0 - accuracy), s.model, s.dataset, prefix))
        sys.stdout.flush()
        results = {"checkpoint": prefix, "checkpoint_sha256": digest,
                   "version": RESULTS_VERSION, "options": measurement_options(args), "batch_norm": batch_norm,
                   "model": s.model, "dataset": s.dataset,
                   "test_loss": loss, "test_accuracy": accuracy, "test_error": 1.0 - accuracy}
        if args.flatness:
            results["flatness"] = measure_flatness(prefix, s, record_dir, args, start)
            print("\n".join(flatness_lines(results["flatness"])))
        if args.json:
            checkpoints.write_json(args.json, results)
    except (ValueError, OSError, tf.errors.OpError) as e:
        return settings.fail(PROG, first_line(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())

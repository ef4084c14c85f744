"""Restore a checkpoint and print its test loss, accuracy and error on a dataset's whole test split.

``python3 evaluate.py checkpoints/NAME`` (newest periodic save), ``checkpoints/NAME/best`` or a prefix
``checkpoints/NAME/model-STEP``. The model and dataset come from the run's ``settings.json`` when
there is one, else from config_train; flags override either. Batch-norm statistics are used as
saved: train.py saves right after an evaluation, so for Entropy-SGD runs (bn_reestimate on) the
periodic-at-evaluation and best checkpoints hold the statistics re-estimated at x.
"""
import os
import sys
import types

from config import config_train
from data import DataError
from models import MODEL_NAMES, get_model
from tfcompat import tf
from training import checkpoints, evaluation, graph, settings
from training.dataset import prepare_records, record_info

PROG = "evaluate.py"
# What evaluation needs from a run's settings: the model, its size, and where the data is.
KEYS = ("dataset", "data_dir", "model", "wrn_depth", "wrn_width", "dropout", "data_format", "batch_size")


def parse_args(argv):
    """Return the parsed command line (one-line errors, exit status 2)."""
    p = settings.OneLineParser(prog=PROG, description="Print test loss, accuracy and error of a checkpoint.")
    p.add_argument("path", help="checkpoint prefix (DIR/model-STEP) or a run directory (or its best/)")
    p.add_argument("-d", "--dataset", choices=settings.DATASET_NAMES, help="dataset (default: the run's)")
    p.add_argument("-m", "--model", choices=MODEL_NAMES, help="model (default: the run's)")
    p.add_argument("--data-dir", help="where archives and TFRecords live (default: the run's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config_train attribute, e.g. --set batch_size=500")
    return p, p.parse_args(argv)


def evaluation_settings(parser, args, folder):
    """Return the settings namespace: config_train, then the run's settings.json, then the flags."""
    values = settings.config_defaults(config_train)
    saved = checkpoints.read_settings(folder) or {}
    values.update({k: saved[k] for k in KEYS if k in saved})
    try:
        settings.apply_overrides(values, args.set)
    except ValueError as e:
        parser.error(str(e))
    for key in ("dataset", "model", "data_dir"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    return types.SimpleNamespace(**values)


def evaluate_checkpoint(prefix, s, record_dir):
    """Build the evaluation graph, restore the model variables of ``prefix``; return (loss, accuracy)."""
    info = record_info(record_dir)
    with tf.Graph().as_default():
        test = graph.evaluation_tower(get_model(s.model), record_dir, s, info.num_classes)
        with tf.Session() as sess:
            checkpoints.restore_subset(sess, prefix, tf.global_variables())
            return evaluation.evaluate(sess, test)


def main(argv=None):
    """Evaluate the checkpoint named on the command line; return the process exit status."""
    parser, args = parse_args(argv)
    prefix = checkpoints.resolve(args.path)
    if prefix is None:
        return settings.fail(PROG, "no checkpoint at %s (give DIR/model-STEP or a run directory)" % args.path)
    folder = args.path if os.path.isdir(args.path) else os.path.dirname(prefix)
    s = evaluation_settings(parser, args, folder)
    try:
        record_dir = prepare_records(s)
    except DataError as e:
        print(str(e), file=sys.stderr)
        return 1
    try:
        loss, accuracy = evaluate_checkpoint(prefix, s, record_dir)
    except ValueError as e:
        return settings.fail(PROG, str(e))
    print("test loss %.4f  accuracy %.4f  error %.2f%%  (%s on %s, %s)"
          % (loss, accuracy, 100.0 * (1.0 - accuracy), s.model, s.dataset, prefix))
    return 0


if __name__ == "__main__":
    sys.exit(main())

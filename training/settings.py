"""Flags + ``config_train`` -> one plain settings object (a ``types.SimpleNamespace``).

Precedence, lowest first: ``config_train`` defaults, ``--set key=value`` overrides, then the named
flags (``-opt``, ``-L``, ``-d``, ``-m``, ``--epochs``, ...) when given. Every bad value is reported as
one line ``train.py: error: ...`` and exit status 2, like argparse's own errors.
"""
import argparse
import ast
import math
import types

from data import DATASETS
from models.layers import DATA_FORMATS, PRECISIONS
from training.console import say

OPTIMIZERS = ("entropy-sgd", "parle", "sgd", "momentum", "adam")
DATASET_NAMES = tuple(DATASETS)

# Settings that fix the graph or the data stream: a resumed run (-rl) must keep them.
RESUME_KEYS = ("optimizer", "L", "dataset", "model", "batch_size", "seed", "wrn_depth", "wrn_width",
               "data_format", "augment", "rotate", "precision", "gpus", "replicas")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, "%s: error: %s (see -h)\n" % (self.prog, message))


def config_defaults(config_class):
    """Return {name: value} of the public class attributes of ``config_class`` (a copy of each list)."""
    return {k: (list(v) if isinstance(v, list) else v)
            for k, v in vars(config_class).items() if not k.startswith("_") and not callable(v)}


def parse_value(text, default):
    """Parse ``text`` to the type of ``default`` (bool, int, float, str or list of numbers/strings).

    Returns the parsed value; raises ValueError with a short reason when the text does not fit. Lists are
    written ``60,120,160`` or ``[60, 120, 160]``; an empty text gives an empty list.
    """
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("expected a bool (true/false/1/0/yes/no)")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ValueError("expected an integer") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise ValueError("expected a number") from None
    if isinstance(default, list):
        body = text.strip()
        if body.startswith("[") and body.endswith("]"):
            body = body[1:-1]
        items = [s.strip() for s in body.split(",") if s.strip()]
        if default and all(isinstance(d, str) for d in default):
            return items
        return [_number(s) for s in items]
    return text


def _number(text):
    """int if ``text`` is an integer literal, else float; ValueError otherwise."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError("expected a list of numbers") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected a list of numbers")
    return value


def build_parser(defaults):
    """Return the train.py argument parser; ``defaults`` (config values) appear in the help text."""
    p = OneLineParser(
        prog="train.py",
        description="Train a model with Entropy-SGD, Parle, SGD, momentum or Adam. Defaults come from "
                    "config.py (config_train); flags and --set override them. Epochs are effective "
                    "epochs: an Entropy-SGD outer step with L Langevin steps counts L minibatches.")
    p.add_argument("-opt", "--optimizer", choices=OPTIMIZERS, help="optimizer (default %s)" % defaults["optimizer"])
    p.add_argument("-L", type=int, metavar="N", help="Langevin steps per outer step (default %d)" % defaults["L"])
    p.add_argument("-d", "--dataset", choices=DATASET_NAMES, help="dataset (default %s)" % defaults["dataset"])
    p.add_argument("-m", "--model", metavar="MODEL", help="model: wrn, allcnn, lenet or mnistfc (default %s)" % defaults["model"])
    p.add_argument("--precision", choices=PRECISIONS,
                   help="what the model computes in; variables stay float32 (default %s; bf16 on GPUs that "
                        "have it, fp16 with dynamic loss scaling)" % defaults["precision"])
    p.add_argument("--xla", action="store_true", default=None,
                   help="compile the training step with XLA (inside the Langevin loop too; Entropy-SGD's "
                        "fused Langevin arithmetic is compiled either way)")
    p.add_argument("-g", "--gpus", type=int, metavar="N",
                   help="synchronous data-parallel training on N local devices; batch_size is per device "
                        "(default %d)" % defaults["gpus"])
    p.add_argument("--replicas", type=int, metavar="N",
                   help="Parle: number of replicas, one per device (default %d)" % defaults["replicas"])
    p.add_argument("--cluster", metavar="FILE",
                   help="Parle on TF's distributed runtime: a JSON file {\"ps\": [...], \"worker\": [...]} of "
                        "host:port (or set TF_CONFIG); one process per worker (replica) and ps")
    p.add_argument("--job-name", choices=("ps", "worker"), help="this process's job in --cluster")
    p.add_argument("--task-index", type=int, metavar="I", help="this process's index in its job")
    p.add_argument("--cluster-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="a worker gives up when the ps or the chief cannot be reached within this time "
                        "(default %(default)s)")
    p.add_argument("--ps-idle-timeout", type=float, default=600.0, metavar="SECONDS",
                   help="the ps exits with an error after this long without word from any worker, and a "
                        "worker after this long without a step of the chief (default %(default)s)")
    p.add_argument("-n", "--name", help="run name for checkpoints/NAME and tensorboard/NAME "
                                        "(default: from optimizer, model, dataset and L)")
    p.add_argument("-rl", "--resume-latest", action="store_true",
                   help="restore the last checkpoint of this run (-n NAME) and continue exactly")
    p.add_argument("-r", "--restore", metavar="PATH",
                   help="start from the model weights of this checkpoint (file prefix or run directory); "
                        "optimizer state and step start fresh")
    p.add_argument("--data-dir", help="where archives and TFRecords live (default %s)" % defaults["data_dir"])
    p.add_argument("--epochs", type=float, help="effective epochs to train (default %s)" % defaults["epochs"])
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="stop once the global (outer) step reaches N, e.g. for quick checks")
    p.add_argument("--seed", type=int, help="seed of the data order, augmentation, dropout, Langevin noise "
                                            "and initialisation (default %d)" % defaults["seed"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config_train attribute, e.g. --set batch_size=64 --set lr_epochs=60,120 "
                        "(repeatable)")
    p.add_argument("--checkpoint-dir", default="checkpoints", help="parent of checkpoints/NAME (default %(default)s)")
    p.add_argument("--logdir", default="tensorboard", help="parent of tensorboard/NAME (default %(default)s)")
    # Test hook, hidden from -h: from this global step on the training loss is NaN.
    p.add_argument("--debug-nan-at-step", type=int, default=None, help=argparse.SUPPRESS)
    return p


def apply_overrides(values, pairs):
    """Apply ``key=value`` strings to the dict ``values`` in place; raises ValueError with a one-line reason."""
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError("--set expects key=value, got %r" % pair)
        if key not in values:
            raise ValueError("--set %s: no such key in config_train (known: %s)" % (key, ", ".join(sorted(values))))
        try:
            values[key] = parse_value(text, values[key])
        except ValueError as e:
            raise ValueError("--set %s=%s: %s" % (key, text, e)) from None


def default_run_name(s):
    """Return the run name used when -n is not given, e.g. ``entropy-sgd_wrn_cifar10_L20``."""
    name = "%s_%s_%s" % (s.optimizer, s.model, s.dataset)
    if s.optimizer == "parle":
        name += "_n%d" % s.replicas
    return name + ("_L%d" % s.L if s.optimizer in ("entropy-sgd", "parle") else "")


def _non_finite(s):
    """Return the name of the first number setting of ``s`` (or number in a list setting) that is NaN or
    infinite, or None. ``--set`` accepts ``inf``/``nan`` as floats; no setting means anything with them."""
    for key, value in sorted(vars(s).items()):
        numbers = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
            return key
    return None


def validate(s, model_names):
    """Return a one-line description of the first nonsensical value in settings ``s``, or None."""
    bad = _non_finite(s)
    if bad:
        return "%s must be finite, got %s" % (bad, getattr(s, bad))
    checks = (
        (s.optimizer in OPTIMIZERS, "optimizer must be one of %s" % ", ".join(OPTIMIZERS)),
        (s.dataset in DATASET_NAMES, "dataset must be one of %s" % ", ".join(DATASET_NAMES)),
        (s.model in model_names, "unknown model %r (known: %s)" % (s.model, ", ".join(model_names))),
        (s.L >= 0, "L must be >= 0, got %s" % s.L),
        (s.optimizer != "parle" or s.L >= 1, "parle needs L >= 1 Langevin steps"),
        (s.precision in PRECISIONS, "precision must be one of %s" % ", ".join(PRECISIONS)),
        (s.gpus >= 1, "-g/gpus must be >= 1"),
        (s.replicas >= 1, "replicas must be >= 1"),
        (s.optimizer != "parle" or s.gpus == 1,
         "-g is data parallelism within one model; parle places one replica per device (use --replicas)"),
        (s.cluster_timeout > 0 and s.ps_idle_timeout > 0, "--cluster-timeout and --ps-idle-timeout must be > 0"),
        (s.batch_size >= 1, "batch_size must be >= 1"),
        (s.epochs > 0, "epochs must be a positive number"),
        (s.max_steps is None or s.max_steps >= 1, "--max-steps must be >= 1"),
        (s.data_format in DATA_FORMATS, "data_format must be one of %s" % ", ".join(DATA_FORMATS)),
        (0 <= s.rotate <= 180, "rotate must be in [0, 180] degrees"),
        (s.lr_decay > 0 and s.esgd_lr_decay > 0, "lr_decay and esgd_lr_decay must be > 0"),
        (0 <= s.dropout < 1, "dropout must be in [0, 1)"),
        (0 <= s.mu_decay < 1, "mu_decay must be in [0, 1)"),
        (s.wrn_depth >= 10 and (s.wrn_depth - 4) % 6 == 0, "wrn_depth must be 6n + 4 (10, 16, 22, 28, ...)"),
        (s.wrn_width >= 1, "wrn_width must be >= 1"),
        (s.log_every >= 1, "log_every must be >= 1"),
        (s.eval_every > 0 and s.checkpoint_every > 0, "eval_every and checkpoint_every must be > 0"),
        (s.keep_checkpoints >= 1, "keep_checkpoints must be >= 1"),
        (s.bn_reestimate_batches >= 1, "bn_reestimate_batches must be >= 1"),
        (list(s.lr_epochs) == sorted(s.lr_epochs) and list(s.esgd_lr_epochs) == sorted(s.esgd_lr_epochs),
         "lr_epochs and esgd_lr_epochs must be increasing"),
        (min(s.lr_epochs + s.esgd_lr_epochs, default=0) >= 0, "lr_epochs and esgd_lr_epochs must be >= 0"),
        (not (s.resume_latest and s.restore), "-rl and -r exclude each other"),
    )
    for ok, message in checks:
        if not ok:
            return message
    for key in ("learning_rate", "esgd_learning_rate", "adam_learning_rate", "momentum", "weight_decay",
                "esgd_weight_decay", "g0", "g1", "langevin_lr", "epsilon", "rho", "rho_scoping"):
        value = getattr(s, key)
        if value < 0:
            return "%s must be >= 0, got %s" % (key, value)
    return None


def parse_settings(argv, config_class, model_names):
    """Parse ``argv`` over ``config_class``'s defaults; return the settings namespace.

    Exits with status 2 and a one-line message on any bad flag or value (the argparse convention).
    The namespace has every config_train attribute plus: run_name, resume_latest, restore, max_steps,
    checkpoint_dir, logdir, debug_nan_at_step, cluster, job_name, task_index, cluster_timeout,
    ps_idle_timeout.
    """
    values = config_defaults(config_class)
    parser = build_parser(values)
    args = parser.parse_args(argv)
    try:
        apply_overrides(values, args.set)
    except ValueError as e:
        parser.error(str(e))
    for flag, key in (("optimizer", "optimizer"), ("L", "L"), ("dataset", "dataset"), ("model", "model"),
                      ("data_dir", "data_dir"), ("epochs", "epochs"), ("seed", "seed"), ("precision", "precision"),
                      ("xla", "xla"), ("gpus", "gpus"), ("replicas", "replicas")):
        if getattr(args, flag) is not None:
            values[key] = getattr(args, flag)
    s = types.SimpleNamespace(**values)
    s.resume_latest = args.resume_latest
    s.restore = args.restore
    s.max_steps = args.max_steps
    s.checkpoint_dir = args.checkpoint_dir
    s.logdir = args.logdir
    s.debug_nan_at_step = args.debug_nan_at_step
    s.cluster, s.job_name, s.task_index = args.cluster, args.job_name, args.task_index
    s.cluster_timeout, s.ps_idle_timeout = args.cluster_timeout, args.ps_idle_timeout
    problem = validate(s, model_names)
    if problem:
        parser.error(problem)
    s.run_name = args.name or default_run_name(s)
    if not s.run_name.strip() or "/" in s.run_name or s.run_name in (".", ".."):
        parser.error("-n NAME must be a plain name, got %r" % s.run_name)
    return s


def resume_mismatch(saved, s):
    """Return a one-line list of RESUME_KEYS whose saved value differs from ``s``, or None if all agree."""
    diffs = ["%s %r -> %r" % (k, saved[k], getattr(s, k)) for k in RESUME_KEYS
             if k in saved and saved[k] != getattr(s, k)]
    return "; ".join(diffs) or None


def fail(prog, message, status=1):
    """Print ``PROG: error: message`` on stderr (never raising) and return ``status`` (for main's return value)."""
    say("%s: error: %s" % (prog, message))
    return status

"""Every setting of train.py, declared once: its kind, meaning, check, flags, group and roles.

``SETTINGS`` are the attributes of config.py's ``config_train`` (which holds their defaults, and nothing
else: the two must name the same keys); ``OPTIONS`` belong to one invocation (-n, -rl, --max-steps, the
cluster flags) and carry their defaults here. training.settings derives from these tables the argument
parser and -h, ``--set`` parsing, validation, the -rl check and ``model_settings``; evaluate.py the
settings it takes from a run's settings.json.

Adding a setting: a line in ``SETTINGS`` and its default in ``config_train``; then read it where it is used.

Roles of a setting:
  RESUME    a resumed run (-rl) must keep it: it fixes the graph or the data streams (the evaluations' batch-
            norm passes' too, whose batches evaluate.py finds from the run's settings.json for every save);
  EVALUATE  evaluate.py takes it from the run to rebuild the test metrics (model, data, batch-norm pass);
  FLATNESS  evaluate.py takes it from the run for the local-entropy estimate (its Langevin loop);
  MODEL     the models read it (training.settings.model_settings).

The model names come from models (which loads TensorFlow only with the first model built). The dataset,
precision and data-format names are listed here rather than imported, because their modules import
TensorFlow; tests keep them equal to data.DATASETS and models.layers.
"""
from models import MODEL_NAMES
from training.setting_types import (BOOL, FLOAT, INT, NUMBERS, STR, Check, Setting, at_least, epoch_list, fraction,
                                    known, one_of, plain_name, positive, within)

OPTIMIZERS = ("entropy-sgd", "parle", "sgd", "momentum", "adam")
DATASET_NAMES = ("cifar10", "cifar100", "mnist", "fashion-mnist")
PRECISIONS = ("fp32", "bf16", "fp16")
DATA_FORMATS = ("NHWC", "NCHW")

RESUME, EVALUATE, FLATNESS, MODEL = "resume", "evaluate", "flatness", "model"
# config.py's sections, in its order
GROUPS = ("data", "model", "speed", "optimizer", "entropy-sgd", "parle", "bookkeeping")

WRN_DEPTH = Check(lambda v: v >= 10 and (v - 4) % 6 == 0, "{label} must be 6n + 4 (10, 16, 22, 28, ...), got {value!r}")

SETTINGS = (
    Setting("dataset", STR, "dataset", "data", one_of(DATASET_NAMES), flags=("-d", "--dataset"),
            roles=(RESUME, EVALUATE)),
    Setting("data_dir", STR, "where archives and TFRecords live, a folder per dataset", "data",
            flags=("--data-dir",), roles=(EVALUATE,)),
    Setting("batch_size", INT, "examples per minibatch, per device with -g", "data", at_least(1),
            roles=(RESUME, EVALUATE)),
    Setting("augment", BOOL, "4-pixel reflection-padded random crops and horizontal flips (no flips for mnist)",
            "data", roles=(RESUME, EVALUATE)),
    Setting("rotate", FLOAT, "largest random rotation in degrees, 0 for none", "data", within(0, 180, "degrees"),
            roles=(RESUME, EVALUATE)),
    Setting("model", STR, "model: %s" % ", ".join(MODEL_NAMES), "model", known("model", MODEL_NAMES),
            flags=("-m", "--model"), metavar="MODEL", roles=(RESUME, EVALUATE)),
    Setting("wrn_depth", INT, "WRN depth, 6n + 4", "model", WRN_DEPTH, roles=(RESUME, EVALUATE, MODEL)),
    Setting("wrn_width", INT, "WRN widening factor", "model", at_least(1), roles=(RESUME, EVALUATE, MODEL)),
    Setting("dropout", FLOAT, "dropout rate; WRN: between a block's convolutions", "model", fraction(),
            roles=(EVALUATE, MODEL)),
    Setting("data_format", STR, "layout the model computes in; NCHW is faster on GPUs", "model",
            one_of(DATA_FORMATS), roles=(RESUME, EVALUATE, MODEL)),
    Setting("precision", STR, "what the model computes in: bf16 on GPUs that have it, fp16 with dynamic "
                              "loss scaling; variables stay float32", "speed", one_of(PRECISIONS),
            flags=("--precision",), roles=(RESUME, EVALUATE, MODEL)),
    Setting("xla", BOOL, "compile the training step with XLA, inside the Langevin loop too; Entropy-SGD's "
                         "fused Langevin arithmetic is compiled either way", "speed", flags=("--xla",)),
    Setting("gpus", INT, "synchronous data-parallel training on N local devices; batch_size is per device",
            "speed", at_least(1), flags=("-g", "--gpus"), metavar="N", roles=(RESUME, EVALUATE)),
    Setting("optimizer", STR, "optimizer", "optimizer", one_of(OPTIMIZERS), flags=("-opt", "--optimizer"),
            roles=(RESUME, EVALUATE)),
    Setting("epochs", FLOAT, "effective epochs to train", "optimizer", positive(), flags=("--epochs",)),
    Setting("learning_rate", FLOAT, "SGD and momentum learning rate", "optimizer", at_least(0)),
    Setting("lr_decay", FLOAT, "factor of the learning rate at each of lr_epochs", "optimizer", positive()),
    Setting("lr_epochs", NUMBERS, "effective epochs of the learning-rate decays", "optimizer", epoch_list()),
    Setting("momentum", FLOAT, "momentum, also of the Langevin loop", "optimizer", at_least(0),
            roles=(FLATNESS,)),
    Setting("nesterov", BOOL, "Nesterov momentum, also in the Langevin loop", "optimizer", roles=(FLATNESS,)),
    Setting("weight_decay", FLOAT, "L2 weight decay of sgd, momentum and adam", "optimizer", at_least(0)),
    Setting("adam_learning_rate", FLOAT, "Adam's learning rate, with the same decays", "optimizer", at_least(0)),
    Setting("L", INT, "Langevin steps per outer step", "entropy-sgd", at_least(0), flags=("-L",), metavar="N",
            roles=(RESUME, EVALUATE, FLATNESS)),
    Setting("g0", FLOAT, "gamma_0: initial scope", "entropy-sgd", at_least(0), roles=(FLATNESS,)),
    Setting("g1", FLOAT, "scoping: gamma_k = g0 * (1 + g1)^k at outer step k", "entropy-sgd", at_least(0)),
    Setting("langevin_lr", FLOAT, "eta': Langevin step size", "entropy-sgd", at_least(0), roles=(FLATNESS,)),
    Setting("epsilon", FLOAT, "thermal noise of the Langevin steps", "entropy-sgd", at_least(0),
            roles=(FLATNESS,)),
    Setting("mu_decay", FLOAT, "weight of the old value in the running average mu", "entropy-sgd", fraction(),
            roles=(FLATNESS,)),
    Setting("esgd_learning_rate", FLOAT, "outer learning rate eta", "entropy-sgd", at_least(0)),
    Setting("esgd_lr_decay", FLOAT, "factor of eta at each of esgd_lr_epochs", "entropy-sgd", positive()),
    Setting("esgd_lr_epochs", NUMBERS, "effective epochs of eta's decays", "entropy-sgd", epoch_list()),
    Setting("esgd_weight_decay", FLOAT, "L2 weight decay, in both loops", "entropy-sgd", at_least(0)),
    Setting("esgd_outer_momentum", FLOAT, "momentum of the outer step (0: the authors' Lua code)", "entropy-sgd",
            at_least(0)),
    Setting("replicas", INT, "Parle: number of replicas, one per device", "parle", at_least(1), flags=("--replicas",),
            metavar="N", roles=(RESUME,)),
    Setting("rho", FLOAT, "rho_0: elastic coupling of each replica to their mean", "parle", at_least(0)),
    Setting("rho_scoping", FLOAT, "rho_k = rho * (1 + rho_scoping)^k", "parle", at_least(0)),
    Setting("seed", INT, "seed of the data order, augmentation, dropout, Langevin noise and initialisation",
            "bookkeeping", flags=("--seed",), roles=(RESUME, EVALUATE)),
    Setting("log_every", INT, "outer steps between progress lines and train summaries", "bookkeeping",
            at_least(1)),
    Setting("eval_every", FLOAT, "effective epochs between evaluations on the test split", "bookkeeping",
            positive(), roles=(RESUME,)),
    Setting("bn_reestimate", BOOL, "re-estimate batch-norm statistics at the weights evaluated (training mode, "
                                   "dropout off) before each evaluation, whatever the optimizer", "bookkeeping",
            roles=(RESUME, EVALUATE)),
    Setting("bn_reestimate_batches", INT, "training batches of that pass", "bookkeeping", at_least(1),
            roles=(RESUME, EVALUATE)),
    Setting("checkpoint_every", FLOAT, "effective epochs between periodic checkpoints", "bookkeeping", positive()),
    Setting("keep_checkpoints", INT, "newest checkpoints kept, the final one among them (best/ besides)", "bookkeeping",
            at_least(1)),
)

OPTIONS = (
    Setting("run_name", STR, "run name for checkpoints/NAME and tensorboard/NAME (default: from optimizer, "
                             "model, dataset and L)", check=plain_name(), flags=("-n", "--name"), metavar="NAME"),
    Setting("resume_latest", BOOL, "restore the last checkpoint of this run (-n NAME) and continue exactly",
            flags=("-rl", "--resume-latest"), default=False),
    Setting("restore", STR, "start from the model weights of this checkpoint (file prefix or run directory); "
                            "optimizer state and step start fresh", flags=("-r", "--restore"), metavar="PATH"),
    Setting("max_steps", INT, "stop once the global (outer) step reaches N, e.g. for quick checks",
            check=at_least(1), flags=("--max-steps",), metavar="N"),
    Setting("checkpoint_dir", STR, "parent of checkpoints/NAME", flags=("--checkpoint-dir",), default="checkpoints"),
    Setting("logdir", STR, "parent of tensorboard/NAME", flags=("--logdir",), default="tensorboard"),
    Setting("cluster", STR, "Parle on TF's distributed runtime: a JSON file {\"ps\": [...], \"worker\": [...]} "
                            "of host:port (or set TF_CONFIG); one process per worker (replica) and ps",
            flags=("--cluster",), metavar="FILE"),
    Setting("job_name", STR, "this process's job in --cluster", check=one_of(("ps", "worker")),
            flags=("--job-name",)),
    Setting("task_index", INT, "this process's index in its job", flags=("--task-index",), metavar="I"),
    Setting("cluster_timeout", FLOAT, "a worker gives up when the ps or the chief cannot be reached within this "
                                      "time", check=positive(), flags=("--cluster-timeout",), metavar="SECONDS",
            default=60.0),
    Setting("ps_idle_timeout", FLOAT, "the ps exits with an error after this long without word from any worker, "
                                      "and a worker after this long without a step of the chief",
            check=positive(), flags=("--ps-idle-timeout",), metavar="SECONDS", default=600.0),
    # a test hook: from this global step on the training loss is NaN
    Setting("debug_nan_at_step", INT, None, flags=("--debug-nan-at-step",)),
)

# Checks of several settings together: (whether settings ``s`` pass, the message when they do not).
RULES = (
    (lambda s: s.optimizer != "parle" or s.L >= 1, "parle needs L >= 1 Langevin steps"),
    (lambda s: s.optimizer != "parle" or s.gpus == 1,
     "-g is data parallelism within one model; parle places one replica per device (use --replicas)"),
    (lambda s: not (s.resume_latest and s.restore), "-rl and -r exclude each other"),
)


def find(name):
    """Return the config_train setting ``name``; KeyError if there is none."""
    for setting in SETTINGS:
        if setting.name == name:
            return setting
    raise KeyError(name)


def keys(*roles):
    """Return the names of the config_train settings that have any of ``roles``, in table order."""
    return tuple(s.name for s in SETTINGS if set(roles) & set(s.roles))

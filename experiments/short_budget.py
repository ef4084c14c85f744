"""Fashion-MNIST, LeNet: SGD with Nesterov momentum vs Entropy-SGD (L = 5, L = 20) vs Parle at equal compute.

    .venv/bin/python -m experiments.short_budget [--epochs 3] [--seeds 1 2 3] [--configs NAME ...]

Trains every configuration for the same number of *effective* epochs (gradient evaluations / 60000; for
Parle, per replica), for each seed, then draws the comparison (compare.py) and measures the flatness of
every final model (evaluate.py --flatness). Stages are separate processes of the project's own programs;
the commands and the wall time of each are logged. Rerunning skips what is complete and resumes (-rl) a
run that was cut off, so the script can be stopped at any time.

Outputs: experiments/results/short-budget/ (committed: comparison.png, comparison.md, flatness.md,
log.txt) and experiments/runs/short-budget/ (not committed: datasets, checkpoints, events, flatness
JSONs, stage logs; see experiments/runner.py).

Setup, as the Entropy-SGD paper's MNIST experiments: LeNet (the authors' mnistconv, batch norm and
dropout 0.5), no augmentation, batch 128, 3 seeds. The budget (--epochs, default 3) is what a 2-core CPU
affords for 9 runs in well under 45 minutes (33 min measured, on a shared machine), so the schedules are
the published ones compressed to it:

- momentum: lr 0.1, Nesterov 0.9, weight decay 5e-4, lr x0.2 at 60 % and 80 % of the budget (the
  WRN recipe's shape, decays at 0.3/0.6/0.8 of 200 epochs, with the last two kept: a short budget
  needs most of its steps at the high rate);
- Entropy-SGD: the paper's MNIST/CIFAR settings: outer lr 1 (Nesterov 0.9), gamma0 = 0.03,
  langevin_lr 0.1, epsilon 1e-4, mu_decay 0.75, weight decay 1e-3; outer lr x0.2 at the same
  60 % / 80 % of the budget. Scoping: the paper's gamma1 = 1e-3 per outer step would move gamma by
  only (1.001)^steps = +7 % (L = 20, 71 outer steps in 3 effective epochs) to +33 % (L = 5, 282
  steps): hardly any scoping. With that gamma1 the paper's LeNet run (80 effective epochs at L = 20,
  1875 outer steps) ends at gamma = 6.5 gamma0, so here gamma1 is set per L so that gamma grows the
  same 6.5-fold over the run: gamma1 = 6.5^(1/steps) - 1 (in the run's settings.json).
- Parle: 3 replicas, each with exactly the Entropy-SGD L = 5 settings above (so one replica would be
  that run) on its own data stream, 3 effective epochs each: equal gradient evaluations per replica,
  3 times those of the other runs in all. rho0 = 0.01 (config.py's value, the authors' default, not
  scaled by L * n as their code does); rho_scoping = gamma1, so that rho grows with gamma, 6.5-fold over
  the run (the Parle paper scopes rho with gamma); config.py's 1e-3 per step would barely move it
  in 282 outer steps, as for gamma. L = 5 because it is the better Entropy-SGD setting at this budget.
  The replicas run as one process on 3 CPU devices, so a Parle run takes about 3 times as long.

The flatness of each final model is measured identically for every configuration: top-3 Hessian
eigenvalues of the training cross-entropy on one fixed batch of 1024 training images (20 Lanczos
steps), and the local-entropy estimate with L = 20 and gamma = gamma0 = 0.03 (the same probe for all,
so that ||x - mu|| compares like with like).
"""
import argparse
import collections
import os
import sys
import time

from experiments import runner
from training.atomic_file import write_atomically
from training.schedule import batches_per_step, steps_for_epochs

TRAIN_SIZE, BATCH = 60000, 128
DECAYS_AT = (0.6, 0.8)         # fractions of the budget where the learning rate is multiplied by 0.2
# gamma_end / gamma_0 of the paper's LeNet run: gamma1 = 1e-3 over 80 effective epochs at L = 20.
GAMMA_GROWTH = (1.0 + 1e-3) ** (80 * TRAIN_SIZE / (20 * BATCH))
TRAIN_POINTS_PER_EPOCH = 25    # training-loss points logged per effective epoch, whatever L
FLATNESS_FLAGS = ["--flatness", "--flatness-batch", "1024", "--hessian-k", "3", "--hessian-iters", "20",
                  "--set", "L=20", "--seed", "0"]

PARLE_REPLICAS, PARLE_RHO = 3, 0.01

# configuration name -> (optimizer, L); L = 0 for the baseline.
CONFIGS = collections.OrderedDict([("lenet-momentum", ("momentum", 0)),
                                   ("lenet-esgd-L5", ("entropy-sgd", 5)),
                                   ("lenet-esgd-L20", ("entropy-sgd", 20)),
                                   ("lenet-parle-n3-L5", ("parle", 5))])


def outer_steps(L, epochs):
    """Return the outer steps of a run of ``epochs`` effective epochs at L (0: one batch a step)."""
    per_step = batches_per_step("entropy-sgd" if L else "momentum", L)
    return steps_for_epochs(epochs, BATCH, per_step, TRAIN_SIZE)


def scoping(L, epochs):
    """Return gamma1 such that gamma grows GAMMA_GROWTH-fold over the run's outer steps."""
    return GAMMA_GROWTH ** (1.0 / outer_steps(L, epochs)) - 1.0


def train_flags(config, seed, epochs):
    """Return the train.py arguments of one run (runner.Study adds its name and folders)."""
    optimizer, L = CONFIGS[config]
    decays = ",".join("%g" % (f * epochs) for f in DECAYS_AT)
    per_step = batches_per_step(optimizer, L)
    flags = ["-d", "fashion-mnist", "-m", "lenet", "-opt", optimizer, "--epochs", "%g" % epochs,
             "--seed", str(seed), "--set", "augment=false", "--set", "batch_size=%d" % BATCH, "--set", "eval_every=0.5",
             "--set", "checkpoint_every=1",
             "--set", "log_every=%d" % max(1, round(TRAIN_SIZE / (BATCH * per_step * TRAIN_POINTS_PER_EPOCH)))]
    if optimizer == "momentum":
        return flags + ["--set", "learning_rate=0.1", "--set", "momentum=0.9", "--set", "nesterov=true",
                        "--set", "weight_decay=5e-4", "--set", "lr_decay=0.2", "--set", "lr_epochs=" + decays]
    if optimizer == "parle":
        g1 = "%.6g" % scoping(L, epochs)
        flags += ["--replicas", str(PARLE_REPLICAS), "--set", "rho=%g" % PARLE_RHO, "--set", "rho_scoping=" + g1]
    return flags + ["-L", str(L), "--set", "esgd_learning_rate=1", "--set", "esgd_lr_decay=0.2",
                    "--set", "esgd_lr_epochs=" + decays, "--set", "g0=0.03", "--set", "g1=%.6g" % scoping(L, epochs),
                    "--set", "langevin_lr=0.1", "--set", "epsilon=1e-4", "--set", "mu_decay=0.75",
                    "--set", "esgd_weight_decay=1e-3"]


def train_all(study, configs, seeds, epochs):
    """Train every (seed, configuration) not yet complete, seed by seed (named ``CONFIG-seedN``, so
    compare.py groups the seeds)."""
    for seed in seeds:
        for config in configs:
            study.train("%s-seed%d" % (config, seed), train_flags(config, seed, epochs),
                        outer_steps(CONFIGS[config][1], epochs))


def parse_args(argv):
    """Return the command line: the budget in effective epochs, the seeds, the configurations, flatness."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=float, default=3.0, help="effective epochs per run (default %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds (default 1 2 3)")
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                   help="configurations to run (default: all)")
    p.add_argument("--skip-flatness", action="store_true",
                   help="stop after the comparison (flatness.md is left as it is)")
    return p.parse_args(argv)


def main(argv=None):
    """Run every stage (train, compare, flatness) and write experiments/results/short-budget/; returns 0, or
    as ``runner.run_script``."""
    args = parse_args(argv)

    def run():
        study = runner.Study("short-budget")
        with study.training():
            run_study(study, args)
        return 0
    return runner.run_script(run)


def run_study(study, args):
    """Run the stages of the parsed command line ``args``."""
    study.log.add("# %s  %s" % (time.strftime("%Y-%m-%d %H:%M:%S %Z"), runner.machine()))
    study.log.add("# python -m experiments.short_budget --epochs %g --seeds %s --configs %s%s"
                  % (args.epochs, " ".join(map(str, args.seeds)), " ".join(args.configs),
                     " --skip-flatness" if args.skip_flatness else ""))
    start = time.time()
    study.stage("prepare-data", ["-m", "data", "--dataset", "fashion-mnist", "--data-dir", study.data])
    train_all(study, args.configs, args.seeds, args.epochs)
    runs = [os.path.join(study.logs, "%s-seed%d" % (c, s)) for s in args.seeds for c in args.configs]
    study.stage("compare", ["compare.py"] + runs + ["--out", os.path.join(study.results, "comparison.png"),
                                                    "--table", os.path.join(study.results, "comparison.md")])
    if not args.skip_flatness:
        groups = collections.OrderedDict((c, ["%s-seed%d" % (c, s) for s in args.seeds]) for c in args.configs)
        table = runner.flatness_table(study.flatness([n for ns in groups.values() for n in ns], FLATNESS_FLAGS),
                                      groups)
        write_atomically(os.path.join(study.results, "flatness.md"), lambda f: f.write(table.encode("utf-8")))
        print(table, end="")
    study.log.add("# total %.1f min" % ((time.time() - start) / 60.0))


if __name__ == "__main__":
    sys.exit(main())

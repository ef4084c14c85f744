"""The Entropy-SGD authors' MNIST protocol, run to the end: Entropy-SGD against SGD and Adam, and Parle.

    .venv/bin/python -m experiments.mnist_protocol [-d fashion-mnist] [--seeds 1 2 3] [--report-only]

One command runs the whole study: prepare the data, train every run (seed by seed, so that a partial
study already compares every configuration), and after each run that ends the flatness of every final
model, the tables, figures and claims, written into the results README's generated section. Rerunning
skips finished runs and resumes cut-off ones (-rl); Ctrl-C stops the run in progress after a checkpoint
(experiments/runner.py). ``--report-only`` reports the runs finished so far and trains nothing.

The recipes are those of the authors' code (ucla-vision/entropy-sgd: train.lua, its README, and
python/models.py, python/optim.py), with their names for the networks: ``lenet`` is their ``mnistconv``.
Batch 128, no augmentation, no weight decay (their ``--L2`` defaults to 0), Nesterov momentum 0.9.

- ``sgd``: learning rate 0.1 for epochs 1-30, 0.02 for 31-60, 0.004 for 61-100 (their regimes
  {1,30,0.1}, {30,60,0.02}, {60,150,0.004}, which take the first matching row), 100 epochs.
- ``adam``: the paper's MNIST baseline, Adam's default rate 1e-3 with the same decays and epochs.
- ``esgd``: L = 20, gamma 1e-4, scoping 1e-3 (gamma * 1.001^t, t the outer steps), noise 1e-4, Langevin
  step 0.1, mu decay 0.75 (their ``lclr`` and ``beta1`` defaults), Nesterov momentum 0.9 in the Langevin
  loop and none on the outer step, x <- x - eta (x - mu), as their Lua code; outer rate 1 for outer epochs 1-2,
  then 0.1 (their 0.01 from outer epoch 8 is never reached), 5 outer epochs. One of their outer epochs is
  a pass of outer steps of L minibatches each, 20 effective epochs: 100 effective epochs in all, the
  decay at 40. Both networks use these settings (mnistfc's table lacks only the 0.01 row).
- ``parle-n3``: 3 replicas of the ``esgd`` recipe (100 effective epochs each, so 3 times the gradient
  evaluations), coupled with rho 0.01 and rho scoping 1e-3 (config.py's values); ``esgd-x3`` and
  ``sgd-x3``: those recipes given the same total gradient evaluations, their schedules stretched
  3-fold (decays at 120, and at 90 and 180, of 300 effective epochs). LeNet, seeds 1 and 2.

Where we depart from their code (the results' README says why): we evaluate the test split every 2
effective epochs, 6 for the x3 runs (they evaluate theirs, which is the test set, every outer epoch or
every 5 epochs); read the training set in shuffled passes (they draw every minibatch with replacement);
make L gradient evaluations per Entropy-SGD outer step (their Lua step makes one more, at x, for its
logged loss); re-estimate batch norm before an evaluation, for every optimizer as they do, on 50 training
batches (they use the split being evaluated); scale the input by the training split's mean and std
(they use (x - 126) / 126); and train 2,344 outer steps for 100 effective epochs (their 5 outer epochs
are 2,340).

Flatness of every final model (``evaluate.py --flatness``, one probe for all): top-3 eigenvalues of the
Hessian of the training loss on a fixed batch of 1024 training images, the same for the filter-normalised
Hessian (invariant to rescaling a layer that feeds batch norm), and the local-entropy estimate with
L = 20, gamma 0.03, Langevin step 0.1, noise 1e-4.
"""
import argparse
import collections
import contextlib
import json
import os
import re
import sys
import time

from analysis.events import load_run
from experiments import claims, runner
from experiments.claims import Claim
from training.schedule import batches_per_step, steps_for_epochs

BATCH, EPOCHS, EVAL_EVERY, CHECKPOINT_EVERY = 128, 100, 2, 2
TRAIN_POINTS_PER_EPOCH = 5
FEWER_EPOCHS = (60, 80)  # where Entropy-SGD's claim to need fewer epochs is checked
# The paper's Table 1 (MNIST), beside each network's claims.
PAPER = {"lenet": "paper, MNIST: Entropy-SGD 0.50 at 80, Adam 0.51 at 100",
         "mnistfc": "paper, MNIST: Entropy-SGD 1.37 at 120, Adam 1.39 at 100"}
FLATNESS_FLAGS = ["--flatness", "--flatness-batch", "1024", "--hessian-k", "3", "--hessian-iters", "20",
                  "--seed", "0", "--set", "L=20", "--set", "g0=0.03", "--set", "langevin_lr=0.1",
                  "--set", "epsilon=1e-4", "--set", "mu_decay=0.75"]

Config = collections.namedtuple("Config", "model recipe stretch")
Config.__doc__ = "One configuration: model, recipe (sgd, adam, esgd, parle-n3), schedule stretch (1 or 3)."

MAIN = [Config(m, r, 1) for m in ("mnistfc", "lenet") for r in ("sgd", "esgd", "adam")]
EQUAL_COMPUTE = [Config("lenet", "parle-n3", 1), Config("lenet", "esgd", 3), Config("lenet", "sgd", 3)]
EQUAL_COMPUTE_SEEDS = (1, 2)


def config_name(c):
    """Return the configuration's name, e.g. ``lenet-esgd`` or ``lenet-sgd-x3``."""
    return "%s-%s%s" % (c.model, c.recipe, "-x%d" % c.stretch if c.stretch > 1 else "")


def run_name(c, seed):
    """Return the run's name: the configuration's, then ``-seedN`` (compare.py groups the seeds)."""
    return "%s-seed%d" % (config_name(c), seed)


def optimizer(c):
    """Return (train.py optimizer, L, replicas) of configuration ``c``."""
    return {"sgd": ("momentum", 0, 1), "adam": ("adam", 0, 1), "esgd": ("entropy-sgd", 20, 1),
            "parle-n3": ("parle", 20, 3)}[c.recipe]


def total_steps(c, train_size):
    """Return the outer steps of configuration ``c``'s runs."""
    opt, L, _ = optimizer(c)
    return steps_for_epochs(EPOCHS * c.stretch, BATCH, batches_per_step(opt, L), train_size)


def _sets(**values):
    return [a for k, v in values.items() for a in ("--set", "%s=%s" % (k, v))]


def _epochs(*epochs):
    return ",".join("%g" % e for e in epochs)


def recipe_flags(c):
    """Return the train.py flags of configuration ``c``'s optimizer and schedule (module docstring)."""
    opt, L, replicas = optimizer(c)
    k = c.stretch
    if c.recipe == "sgd":
        return ["-opt", opt] + _sets(learning_rate=0.1, momentum=0.9, nesterov="true", weight_decay=0,
                                     lr_decay=0.2, lr_epochs=_epochs(30 * k, 60 * k))
    if c.recipe == "adam":
        return ["-opt", opt] + _sets(adam_learning_rate=1e-3, weight_decay=0, lr_decay=0.2,
                                     lr_epochs=_epochs(30 * k, 60 * k))
    flags = ["-opt", opt, "-L", str(L)] + _sets(
        g0=1e-4, g1=1e-3, epsilon=1e-4, langevin_lr=0.1, mu_decay=0.75, momentum=0.9, nesterov="true",
        esgd_outer_momentum=0, esgd_learning_rate=1, esgd_lr_decay=0.1, esgd_lr_epochs=_epochs(40 * k),
        esgd_weight_decay=0)
    if replicas > 1:
        flags += ["--replicas", str(replicas)] + _sets(rho=0.01, rho_scoping=1e-3)
    return flags


def train_flags(c, seed, dataset, train_size):
    """Return the train.py flags of one run (without the folders and name, which runner.Study adds)."""
    opt, L, _ = optimizer(c)
    log_every = max(1, round(train_size / (BATCH * batches_per_step(opt, L) * TRAIN_POINTS_PER_EPOCH)))
    return (["-d", dataset, "-m", c.model, "--epochs", "%g" % (EPOCHS * c.stretch), "--seed", str(seed)]
            + _sets(augment="false", batch_size=BATCH, eval_every=EVAL_EVERY * c.stretch,
                    checkpoint_every=CHECKPOINT_EVERY, log_every=log_every)
            + recipe_flags(c))


def plan(seeds):
    """Return the (configuration, seed) pairs in the order they are trained: seed by seed, each seed's
    equal-compute runs after its main ones, so that a study cut short has every configuration at the
    seeds it reached."""
    return [(c, s) for s in seeds for c in MAIN + (EQUAL_COMPUTE if s in EQUAL_COMPUTE_SEEDS else [])]


def minibatches_per_step(c):
    """Return the minibatch gradients one outer step of configuration ``c`` evaluates (all replicas)."""
    opt, L, replicas = optimizer(c)
    return batches_per_step(opt, L) * replicas


def time_left(study, runs, train_size, start=0):
    """Return an estimate of the training seconds left for ``runs[start:]`` ((configuration, seed) pairs),
    from the seconds per minibatch gradient measured so far over ``runs``: the configuration's runs, else
    its model's, else all (outer steps differ 60-fold in work, minibatches do not); None before any has
    trained."""
    def work(select):
        return {run_name(o, s): minibatches_per_step(o) for o, s in runs if select(o)}

    left = 0.0
    for c, seed in runs[start:]:
        name, total = run_name(c, seed), total_steps(c, train_size)
        if not study.pending(name, total):
            continue
        remaining = total - study.checkpoint_step(name)
        rate = (study.timings.rate(work(lambda o, c=c: o == c))
                or study.timings.rate(work(lambda o, c=c: o.model == c.model))
                or study.timings.rate(work(lambda o: True)))
        if rate is None:
            return None
        left += remaining * minibatches_per_step(c) * rate
    return left


def train_all(study, runs, dataset, train_size, finished=lambda: None):
    """Train every run of ``runs`` not yet finished, with a line on the progress and time left before each
    (a run that fails is logged and left unfinished, and the next invocation tries it again; one that
    diverged is not tried again, and runner.Study.train says so); call ``finished()`` after each run that
    trains to its end."""
    for i, (c, seed) in enumerate(runs):
        name, total = run_name(c, seed), total_steps(c, train_size)
        if study.done(name, total):
            continue
        if study.pending(name, total):
            left = time_left(study, runs, train_size, start=i)
            left = "unknown until a run has trained" if left is None else "about " + runner.duration(left)
            study.log.add("[%s] run %d/%d %s from outer step %d of %d; training left: %s"
                          % (time.strftime("%Y-%m-%d %H:%M:%S"), i + 1, len(runs), name,
                             study.checkpoint_step(name), total, left))
        study.train(name, train_flags(c, seed, dataset, train_size), total, finished)


def error_at(run, epoch):
    """Return (test error, effective epoch) of ``run``'s evaluation nearest to ``epoch``."""
    series = run.test_error
    i = min(range(len(series.epochs)), key=lambda j: abs(series.epochs[j] - epoch))
    return series.values[i], series.epochs[i]


def final_errors(runs):
    """Return the final test errors (%) of ``runs`` (analysis.events Runs)."""
    return [100 * r.test_error.values[-1] for r in runs]


def error_table(study, finished, loaded):
    """Return the Markdown test-error table of the finished runs ({Config: {seed: run name}}, ``loaded``:
    {Config: {seed: its Run}}): effective epochs (per replica, times the replicas), final and best error, the error of
    the evaluation nearest each of FEWER_EPOCHS effective epochs (x3 runs: 3 times those) with the mean
    epoch it was at, training time (``run_time``)."""
    head = ["configuration", "seeds", "effective epochs", "final test error (%)", "best test error (%)"]
    stretches = sorted({c.stretch for c in finished} - {1})
    head += ["error near %d (%%%s)" % (e, "".join("; x%d runs: %d" % (k, k * e) for k in stretches))
             for e in FEWER_EPOCHS] + ["training time / run"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for c, by_seed in finished.items():
        runs, names = list(loaded[c].values()), list(by_seed.values())
        replicas = optimizer(c)[2]
        row = [config_name(c), str(len(runs)),
               runner.cell([r.test_error.epochs[-1] for r in runs], 1) + (" × %d" % replicas if replicas > 1 else ""),
               runner.cell(final_errors(runs), 2),
               runner.cell([100 * r.test_error.values.min() for r in runs], 2)]
        for e in FEWER_EPOCHS:
            at = [error_at(r, e * c.stretch) for r in runs]
            row.append("%s (at %.1f)" % (runner.cell([100 * a[0] for a in at], 2), sum(a[1] for a in at) / len(at)))
        times = [run_time(study, n) for n in names]
        row.append(runner.duration(sum(times) / len(times)) if None not in times else "–")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def run_time(study, name):
    """Return the training seconds of finished run ``name``: its seconds per outer step over the sittings
    counted, times its outer steps (so a sitting that a killed runner never counted is left out of the
    rate, not out of the time); None when no sitting was counted."""
    rate = study.timings.rate({name: 1})
    return None if rate is None else rate * study.checkpoint_step(name)


def finished_runs(study, configs, seeds, train_size):
    """Return {Config: {seed: finished run name}} for ``configs``, configurations with none left out."""
    finished = collections.OrderedDict()
    for c in configs:
        names = collections.OrderedDict((s, run_name(c, s)) for s in seeds
                                        if study.done(run_name(c, s), total_steps(c, train_size)))
        if names:
            finished[c] = names
    return finished


def _compared(text, candidate, references, values, diverged, limit, label=None, strict=False):
    """Return the Claim ``text`` (limit ``limit``, ``strict`` or not) between ``candidate`` (a Config; shown
    as ``label`` if given) and the lowest of ``references`` (Configs) on ``values`` ({Config: {seed: value}}),
    over the seeds all of them have; None when one has no values or they share no seed. Its note names the
    runs of these configurations that diverged (the verdict is then undecided)."""
    involved = [candidate] + references
    if not references or not all(c in values for c in involved):
        return None
    seeds = sorted(set.intersection(*(set(values[c]) for c in involved)))
    if not seeds:
        return None
    lost = ["%s-seed%d" % (config_name(c), s) for c in involved for s in diverged.get(c, ())]
    pick = {config_name(c): [values[c][s] for s in seeds] for c in references}
    return Claim(text, (label or config_name(candidate), [values[candidate][s] for s in seeds]),
                 claims.lowest(pick), limit, "%s diverged" % ", ".join(lost) if lost else "", strict)


def protocol_claims(loaded, sharpness, diverged):
    """Return the claims (experiments.claims) that the finished runs decide, from ``loaded`` ({Config: {seed:
    its Run}}), ``sharpness`` ({Config: {seed: top eigenvalue of the filter-normalised Hessian}}) and
    ``diverged`` ({Config: [seeds that diverged]}), each over the seeds both sides finished: per network,
    Entropy-SGD's final test error against the best baseline's at 100 effective epochs (within 0.1 points
    or better), its error at 80 against that baseline's at 100 (no worse; the paper claims it for LeNet),
    its sharpness against the least sharp baseline's (smaller); and Parle against the better of the x3
    runs (within 0.1 points)."""
    final = {c: {s: 100 * r.test_error.values[-1] for s, r in runs.items()} for c, runs in loaded.items()}
    found = []
    for model in ("mnistfc", "lenet"):
        esgd = Config(model, "esgd", 1)
        baselines = [Config(model, r, 1) for r in ("sgd", "adam") if Config(model, r, 1) in loaded]
        at_80 = dict(final)
        if esgd in loaded:
            at_80[esgd] = {s: 100 * error_at(r, 80)[0] for s, r in loaded[esgd].items()}
        found += [
            _compared("%s: final test error (%%) at 100 effective epochs within 0.1 points of the best baseline's "
                      "or better (%s)" % (model, PAPER[model]), esgd, baselines, final, diverged, 0.1),
            _compared("%s: test error (%%) of Entropy-SGD at 80 effective epochs no worse than the best baseline's "
                      "at 100%s" % (model, "" if model == "lenet" else " (the paper's mnistfc figure is at 120)"),
                      esgd, baselines, at_80, diverged, 0.0, label="%s at 80" % config_name(esgd)),
            _compared("%s: top eigenvalue of the filter-normalised Hessian smaller than the least sharp "
                      "baseline's" % model, esgd, baselines, sharpness, diverged, 0.0, strict=True)]
    alone = [c for c in EQUAL_COMPUTE if c.stretch == 3 and c in loaded]
    found.append(_compared("lenet, equal compute (300 effective epochs in all): Parle's final test error (%) "
                           "within 0.1 points of the better of Entropy-SGD and SGD given as many gradients",
                           Config("lenet", "parle-n3", 1), alone, final, diverged, 0.1))
    return [c for c in found if c is not None]


# Under the equal-compute figure (compare_flags puts Parle at its replicas' compute in all).
PARLE_AXIS = ("\n\nParle's curve is drawn at the gradient evaluations of its three replicas in all (its "
              "effective epochs per replica times 3), so that at any point on the x axis the three "
              "configurations have used the same compute.")


def compare_flags(configs):
    """Return compare.py's ``--times`` flags that put each configuration of ``configs`` with replicas at
    their compute in all (compare.py counts a Parle run's effective epochs per replica)."""
    flags = []
    for c in configs:
        replicas = optimizer(c)[2]
        if replicas > 1:
            flags += ["--times", r"^%s-seed\d+$=%d" % (re.escape(config_name(c)), replicas)]
    return flags


def report(study, seeds, train_size, measure_flatness):
    """Write the results of the runs finished so far into the results README's generated section (and
    print it first): the test-error tables and figures, the flatness of the runs with an up-to-date
    result (measuring the others when ``measure_flatness``: Study.flatness), and the claims they decide.
    The figures' x axis is effective epochs, of all replicas together for Parle (``compare_flags``)."""
    blocks = [("Test error", "errors", MAIN, seeds),
              ("Parle at equal compute (LeNet)", "equal-compute", EQUAL_COMPUTE,
               [s for s in EQUAL_COMPUTE_SEEDS if s in seeds])]
    loaded, sharpness, diverged = {}, {}, {}
    parts = [progress_line(study, plan(seeds), train_size)]
    for heading, title, configs, block_seeds in blocks:
        finished = finished_runs(study, configs, block_seeds, train_size)
        for c in configs:
            lost = [s for s in block_seeds if study.is_diverged(run_name(c, s))]
            if lost:
                diverged[c] = lost
        note = study.diverged_note([run_name(c, s) for s in block_seeds for c in configs])
        if not finished and not note:
            continue
        block = {c: {s: load_run(os.path.join(study.logs, n)) for s, n in names.items()}
                 for c, names in finished.items()}
        loaded.update(block)
        parts += ["### " + heading, (error_table(study, finished, block) if finished else "") + note]
        for model in sorted({c.model for c in finished}):
            drawn = [c for c in finished if c.model == model]
            runs = [os.path.join(study.logs, n) for c in drawn for n in finished[c].values()]
            figure = "%s-%s.png" % (title, model)
            study.stage("compare-%s-%s" % (title, model),
                        ["compare.py"] + runs + compare_flags(drawn) + ["--out", os.path.join(study.results, figure)])
            parts.append("![%s: test error against effective epochs](%s)" % (model, figure)
                         + (PARLE_AXIS if configs is EQUAL_COMPUTE else ""))
        results = study.flatness([n for ns in finished.values() for n in ns.values()], FLATNESS_FLAGS,
                                 measure_flatness)
        measured = collections.OrderedDict((c, ns) for c, ns in finished.items()
                                           if all(n in results for n in ns.values()))
        if measured:
            groups = collections.OrderedDict((config_name(c), list(ns.values())) for c, ns in measured.items())
            parts += ["Flatness of the final models:", runner.flatness_table(results, groups)]
            sharpness.update({c: {s: results[n]["flatness"]["hessian_top_normalised"][0] for s, n in ns.items()}
                              for c, ns in measured.items()})
    found = protocol_claims(loaded, sharpness, diverged)
    if found:
        parts += ["### Claims", claims.table(found)]
    text = "\n\n".join(part.strip("\n") for part in parts) + "\n"
    print(text, end="")
    study.fill_readme("results", text)


def progress_line(study, runs, train_size):
    """Return the line that opens the results: when they were written, the runs finished (and diverged)
    of ``runs`` ((configuration, seed) pairs), and the training time, so far or, once every run has ended,
    in all."""
    names = [(run_name(c, s), total_steps(c, train_size)) for c, s in runs]
    finished = sum(study.done(n, total) for n, total in names)
    diverged = sum(study.is_diverged(n) for n, _ in names)
    seconds = sum(study.timings.seconds(n) for n, _ in names)
    return ("*Written by `python -m experiments.mnist_protocol` on %s: %d of %d runs finished%s, %s of training "
            "%s.*" % (time.strftime("%Y-%m-%d %H:%M %Z"), finished, len(names),
                      ", %d diverged" % diverged if diverged else "", runner.duration(seconds),
                      "in all" if finished + diverged == len(names) else "so far"))


def parse_args(argv):
    """Return the command line: data set, seeds, report-only, flatness."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-d", "--dataset", default="fashion-mnist", choices=("mnist", "fashion-mnist"),
                   help="data set (default %(default)s; mnist is downloaded, Fashion-MNIST also comes from "
                        "Debian's dataset-fashion-mnist package)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds (default 1 2 3)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing; report the runs finished so far (measuring the flatness of those without "
                        "an up-to-date result, beside any study running, unless --skip-flatness)")
    p.add_argument("--skip-flatness", action="store_true",
                   help="measure no flatness (half a minute a model); the report shows the up-to-date results "
                        "(measured on the run's present final save, with the study's flags, by the present "
                        "evaluate.py)")
    return p.parse_args(argv)


def main(argv=None):
    """Run the study (or only its report); returns 0, or as ``runner.run_script`` (a failed stage exits
    with its status)."""
    args = parse_args(argv)
    return runner.run_script(lambda: run_study(args, argv if argv is not None else sys.argv[1:]))


def run_study(args, argv):
    """Run the study of the parsed command line ``args`` (``argv``: as typed, for the log); returns 0."""
    study = runner.Study("mnist-protocol-" + args.dataset)
    study.check_readme("results")  # now, not after a sitting of training
    with contextlib.nullcontext() if args.report_only else study.training():
        study.log.add("# %s  %s" % (time.strftime("%Y-%m-%d %H:%M:%S %Z"), runner.machine()))
        study.log.add("# python -m experiments.mnist_protocol %s" % " ".join(argv))
        study.stage("prepare-data", ["-m", "data", "--dataset", args.dataset, "--data-dir", study.data])
        with open(os.path.join(study.data, args.dataset, "meta.json")) as f:
            train_size = json.load(f)["train_size"]
        def write_report():
            report(study, args.seeds, train_size, measure_flatness=not args.skip_flatness)

        def report_between_runs():  # a failed report stage leaves the training to go on
            try:
                write_report()
            except runner.StageFailed as e:
                study.log.add("[%s] the report failed (status %d): training goes on, and reports again after the "
                              "next run" % (time.strftime("%Y-%m-%d %H:%M:%S"), e.code))

        if not args.report_only:  # the README is brought up to date as each run ends
            train_all(study, plan(args.seeds), args.dataset, train_size, report_between_runs)
        write_report()
    return 0


if __name__ == "__main__":
    sys.exit(main())

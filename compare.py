"""Compare training runs from their TensorBoard event files: a figure and a table at equal compute.

    python3 compare.py tensorboard/ --out comparison.png --table comparison.md
    python3 compare.py tensorboard/lenet-sgd-s* tensorboard/lenet-esgd-L5-s* --out plot.png
    python3 compare.py tensorboard/ --group '^(.*)-run\\d+$' --out plot.png
    python3 compare.py tensorboard/lenet-* --times 'parle-n3=3' --out plot.png

Arguments name run folders (``tensorboard/RUN_NAME``), parents of run folders, or globs. Runs whose names
differ only by a trailing ``-seedN`` / ``_sN`` are seeds of one configuration (or give ``--group REGEX``:
its first group is the configuration). The figure shows test error and training loss against effective
epochs (gradient evaluations / train size), mean and min-max band over seeds; the table (printed, and
written as Markdown with ``--table``) gives final and best test error, mean ± std over seeds, per
configuration. ``--times REGEX=N`` puts the runs whose name matches REGEX at N times their effective
epochs: a Parle run counts them per replica, so N = its replicas draws it at the compute of all of them.
Any run that cannot be read stops the program with a one-line error and status 1.
"""
import argparse
import os
import re
import sys

from analysis.events import AnalysisError, find_runs, load_run, scale_epochs
from analysis.report import group_runs, markdown_table, plot, summarize
from training.atomic_file import write_atomically
from training.settings import OneLineParser


def times_rule(text):
    """Parse a ``--times`` value ``REGEX=N`` into (compiled REGEX, N > 0)."""
    pattern, sep, factor = text.rpartition("=")
    try:
        factor = float(factor)
    except ValueError:
        factor = None
    if not sep or not pattern or factor is None or not 0 < factor < float("inf"):
        raise argparse.ArgumentTypeError("expected REGEX=N with N a positive number, got %r" % text)
    try:
        return re.compile(pattern), factor
    except re.error as e:
        raise argparse.ArgumentTypeError("bad regular expression %r: %s" % (pattern, e)) from None


def parse_args(argv):
    """Return the parsed command line."""
    parser = OneLineParser(prog="compare.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUNDIR",
                        help="run folder, folder of runs (e.g. tensorboard/), or a glob of either")
    parser.add_argument("--out", required=True, metavar="PNG", help="where to write the figure")
    parser.add_argument("--table", metavar="MD", help="also write the table as Markdown here")
    parser.add_argument("--group", metavar="REGEX",
                        help="configuration of a run = first group (or match) of REGEX in its name; "
                             "default: the name without a trailing -seedN/_sN")
    parser.add_argument("--times", action="append", default=[], type=times_rule, metavar="REGEX=N",
                        help="runs whose name matches REGEX at N times their effective epochs, e.g. a Parle "
                             "run's replicas to draw it at total compute (repeatable; the first match counts)")
    args = parser.parse_args(argv)
    if args.group is not None:
        try:
            re.compile(args.group)
        except re.error as e:
            parser.error("--group: bad regular expression: %s" % e)
    for path in (args.out, args.table):
        if path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            parser.error("the folder of %s does not exist" % path)
    return args


def main(argv=None):
    """Read the runs, print the table, write the figure (and table); returns the exit status."""
    args = parse_args(argv)
    try:
        runs = [load_run(path) for path in find_runs(args.runs)]
        runs = [scale_epochs(r, next((n for regex, n in args.times if regex.search(r.name)), 1.0)) for r in runs]
    except AnalysisError as e:
        print("compare.py: error: %s" % e, file=sys.stderr)
        return 1
    groups = group_runs(runs, args.group)
    table = markdown_table(summarize(groups))
    print(table, end="")
    target = args.out
    try:  # the figure first: should it fail (a full disk), the table is left as it was too
        plot(groups, target)
        if args.table:
            target = args.table
            write_atomically(target, lambda f: f.write(table.encode("utf-8")))
    except OSError as e:
        print("compare.py: error: cannot write %s: %s" % (target, e.strerror or e), file=sys.stderr)
        return 1
    print("wrote %s (%d runs, %d configurations)%s"
          % (args.out, len(runs), len(groups), " and %s" % args.table if args.table else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Group runs into configurations, aggregate seeds, and present them as a Markdown table and a figure.

A configuration is a set of runs that differ only by seed: by default the run names with a trailing
``-seedN`` / ``_seedN`` / ``-sN`` / ``_sN`` removed, or the first group of a user regex. Seeds of one
configuration are shown as their mean with a min-max band, all on the effective-epoch axis.
"""
import collections
import re

import numpy as np
# A Figure of its own rather than pyplot: no global figure state and no screen backend, files only (Agg).
from matplotlib.figure import Figure

from training.atomic_file import write_atomically

SEED_SUFFIX = re.compile(r"[-_](?:seed|s)\d+$")

Band = collections.namedtuple("Band", "epochs mean low high")
Band.__doc__ = "Seeds of one configuration on a common effective-epoch grid: mean, min and max (1-D arrays)."

Summary = collections.namedtuple(
    "Summary", "config seeds final_mean final_std best_mean best_std epochs wall_time")
Summary.__doc__ = ("One table row: test errors as fractions, mean and sample std over seeds (std is NaN for "
                   "one seed); ``epochs`` the mean final effective epoch; ``wall_time`` the mean seconds per run.")


def config_name(run_name, pattern=None):
    """Return the configuration of ``run_name``: the first group (or whole match) of ``pattern`` where it
    matches, else the name with its seed suffix removed (a name without one is its own configuration)."""
    if pattern is not None:
        match = re.search(pattern, run_name)
        if match:
            return match.group(1) if match.groups() else match.group(0)
        return run_name
    return SEED_SUFFIX.sub("", run_name)


def group_runs(runs, pattern=None):
    """Return an OrderedDict {configuration: [Run, ...]} sorted by configuration, runs sorted by name."""
    groups = collections.defaultdict(list)
    for run in runs:
        groups[config_name(run.name, pattern)].append(run)
    return collections.OrderedDict((k, sorted(groups[k], key=lambda r: r.name)) for k in sorted(groups))


def band(series_list):
    """Return the Band of several runs' Series (one per seed) on a common grid.

    The grid is every effective epoch any seed has within the range all seeds cover, each seed
    interpolated linearly onto it: seeds logged at the same points (the usual case) are used as they are,
    and a seed that stopped early does not leave a mean over fewer seeds at the end.
    """
    lo = max(s.epochs[0] for s in series_list)
    hi = min(s.epochs[-1] for s in series_list)
    grid = np.unique(np.concatenate([s.epochs for s in series_list]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    stack = np.stack([np.interp(grid, s.epochs, s.values) for s in series_list])
    return Band(grid, stack.mean(axis=0), stack.min(axis=0), stack.max(axis=0))


def _mean_std(values):
    values = np.asarray(values, np.float64)
    std = values.std(ddof=1) if len(values) > 1 else float("nan")
    return float(values.mean()), float(std)


def summarize(groups):
    """Return a list of Summary rows, one per configuration of ``groups`` (from group_runs), in order."""
    rows = []
    for config, runs in groups.items():
        final_mean, final_std = _mean_std([r.test_error.values[-1] for r in runs])
        best_mean, best_std = _mean_std([r.test_error.values.min() for r in runs])
        rows.append(Summary(config, len(runs), final_mean, final_std, best_mean, best_std,
                            float(np.mean([r.test_error.epochs[-1] for r in runs])),
                            float(np.mean([r.wall_time for r in runs]))))
    return rows


def _percent(mean, std):
    return "%.2f" % (100 * mean) if np.isnan(std) else "%.2f ± %.2f" % (100 * mean, 100 * std)


def _duration(seconds):
    if seconds < 120:
        return "%.0f s" % seconds
    return "%.1f min" % (seconds / 60.0) if seconds < 7200 else "%.1f h" % (seconds / 3600.0)


def markdown_table(rows):
    """Return the rows as a Markdown table (errors in percent, mean ± sample std over seeds)."""
    lines = ["| configuration | seeds | effective epochs | final test error (%) | best test error (%) "
             "| wall time / run |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append("| %s | %d | %.1f | %s | %s | %s |" % (
            r.config, r.seeds, r.epochs, _percent(r.final_mean, r.final_std),
            _percent(r.best_mean, r.best_std), _duration(r.wall_time)))
    return "\n".join(lines) + "\n"


def _draw(ax, groups, field, scale):
    """Draw one Band per configuration of the Series ``field`` on ``ax``; returns {config: Band} drawn."""
    drawn = collections.OrderedDict()
    for config, runs in groups.items():
        b = band([getattr(r, field) for r in runs])
        b = Band(b.epochs, scale * b.mean, scale * b.low, scale * b.high)
        line, = ax.plot(b.epochs, b.mean, label="%s (%d)" % (config, len(runs)))
        ax.fill_between(b.epochs, b.low, b.high, color=line.get_color(), alpha=0.25, linewidth=0)
        drawn[config] = b
    return drawn


def plot(groups, out_path):
    """Draw test error (%) and training loss against effective epochs, one mean line and min-max band per
    configuration, and write the figure as PNG to ``out_path`` (via a temporary name).

    Returns {"test_error": {config: Band}, "train_loss": {config: Band}}: exactly the data drawn, so
    callers and tests can check what the picture shows.
    """
    fig = Figure(figsize=(12, 4.5))
    ax_err, ax_loss = fig.subplots(1, 2)
    drawn = {"test_error": _draw(ax_err, groups, "test_error", 100.0),
             "train_loss": _draw(ax_loss, groups, "train_loss", 1.0)}
    ax_err.set(xlabel="effective epochs (gradient evaluations / train size)", ylabel="test error (%)",
               title="test error")
    ax_loss.set(xlabel="effective epochs (gradient evaluations / train size)", ylabel="training loss",
                title="training loss (minibatch)", yscale="log")
    for ax in (ax_err, ax_loss):
        ax.grid(True, alpha=0.3)
    ax_err.legend(title="configuration (seeds)", fontsize="small")
    fig.tight_layout()
    write_atomically(out_path, lambda f: fig.savefig(f, format="png", dpi=120))
    return drawn

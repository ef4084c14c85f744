"""Whether a claim held in a study, computed from its runs so that no verdict in a results README is typed
by hand: each claim compares a candidate's values over seeds with a reference's (the mean difference and
its standard error) and holds when the difference is at most the claim's limit (below it, for a strict
claim).

    held  <=>  mean(candidate) - mean(reference) <= limit    (the means as shown, rounded; < when strict)

e.g. "Entropy-SGD's final test error is within 0.1 points of the best baseline's or better" has the limit
+0.1 (points), "no worse" 0, "smaller" 0 and strict. The standard error sqrt(s_a^2 / n_a + s_b^2 / n_b)
(sample variances over seeds) says how far the difference is from the seeds' noise; the verdict does not
use it, so a reader can see a claim that holds, or fails, by less than the noise. A claim with a note (a
run that diverged) is undecided: the note says why, and the reader judges.
"""
import collections
import math

import numpy as np

from experiments.runner import cell, settle

Claim = collections.namedtuple("Claim", "text candidate reference limit note strict", defaults=("", False))
Claim.__doc__ = """One claim: ``text`` says it; ``candidate`` and ``reference`` are (label, values over seeds);
it holds when mean(candidate) - mean(reference) <= ``limit`` (< when ``strict``); a ``note`` leaves it
undecided."""


def difference(candidate, reference):
    """Return (mean(candidate) - mean(reference), its standard error), the error None unless both have at
    least two values."""
    a, b = np.asarray(candidate, np.float64), np.asarray(reference, np.float64)
    se = None
    if len(a) > 1 and len(b) > 1:
        se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return a.mean() - b.mean(), se


def lowest(samples):
    """Return the (label, values) of ``samples`` ({label: values}) with the lowest mean."""
    label = min(samples, key=lambda k: np.mean(samples[k]))
    return label, samples[label]


def table(claims, digits=2):
    """Return the Markdown table of ``claims``: the claim, both sides as mean ± std over their seeds,
    the difference ± its standard error, and whether it held. The difference and the verdict are those
    of the means as shown (to ``digits`` decimals), so that a row reads consistently: 9.30 against 9.20
    is +0.10 and within a limit of 0.1, whatever the float rounding underneath."""
    lines = ["| claim | candidate | reference | difference | held |", "|---|---|---|---:|---|"]
    for c in claims:
        shown_means = [round(float(settle(side[1], digits).mean()), digits) for side in (c.candidate, c.reference)]
        diff = round(shown_means[0] - shown_means[1], digits)
        se = difference(c.candidate[1], c.reference[1])[1]
        shown = "%+.*f" % (digits, diff) + ("" if se is None else " ± %.*f" % (digits, se))
        held = diff < c.limit if c.strict else diff <= c.limit
        verdict = "undecided: " + c.note if c.note else ("yes" if held else "no")
        lines.append("| %s | %s %s | %s %s | %s | %s |" % (
            c.text, c.candidate[0], _cell(c.candidate[1], digits), c.reference[0], _cell(c.reference[1], digits),
            shown, verdict))
    return "\n".join(lines) + "\n"


def _cell(values, digits):
    """'mean ± std (n seeds)' of ``values``."""
    return "%s (%d)" % (cell(values, digits), len(values))

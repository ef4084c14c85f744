"""The errors that end a run with one line, and the one line of an error's message."""


class RunError(Exception):
    """A problem that ends the run (a checkpoint that cannot be restored, a busy run folder); its
    message is the one line the entry point prints."""


class WriteFailed(RunError):
    """Writing one of the run's files failed (a full disk, a folder gone read-only or removed).

    ``what`` names what could not be written ("events", "checkpoint"), so the loop knows whether a final
    checkpoint is still worth trying.
    """

    def __init__(self, what, path, error):
        super(WriteFailed, self).__init__("cannot write %s to %s (%s)" % (what, path, first_line(error)))
        self.what = what


def first_line(error):
    """Return one line of an exception's message that says what went wrong.

    TensorFlow's op errors run over many lines: "Graph execution error:", where the op was defined,
    "Node: 'NAME'", then the cause, then "[[...]]" locating the op; the cause is what the user needs.
    """
    lines = [l.strip() for l in str(getattr(error, "message", None) or error).splitlines()]
    lines = [l for l in lines if l and not l.startswith("[[")]
    nodes = [i for i, l in enumerate(lines) if l.startswith("Node:")]
    if nodes:
        lines = lines[nodes[-1] + 1:]
    return lines[0] if lines else type(error).__name__

"""The errors that end a run with one line."""
from tfcompat import first_line


class RunError(Exception):
    """A problem that ends the run (a checkpoint that cannot be restored, a busy run folder); its
    message is the one line the entry point prints."""


class WriteFailed(RunError):
    """Writing one of the run's files failed (a full disk, a folder gone read-only or removed).

    ``what`` names what could not be written ("events", "checkpoint"), so the loop knows whether a final
    checkpoint is still worth trying.
    """

    def __init__(self, what, path, error):
        # TF's message is "<file>; <reason>", the file often a temporary name of ``path``: keep the reason.
        reason = first_line(error).rsplit("; ", 1)[-1]
        super(WriteFailed, self).__init__("cannot write %s to %s (%s)" % (what, path, reason))
        self.what = what

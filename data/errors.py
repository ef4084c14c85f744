"""The one exception the data package raises for anything the user must act on."""


class DataError(Exception):
    """A dataset could not be fetched, verified or converted.

    The message is one paragraph for a person: what failed and what to do about it
    (a mirror with ``--url``, a file already on disk with ``--archive``, more disk space).
    ``train.py`` and ``python -m data`` print it alone and exit non-zero, without a traceback.
    """

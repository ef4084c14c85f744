"""``.venv/bin/python -m data --dataset NAME [--data-dir DIR] [--url URL] [--archive PATH] [--md5 HEX]``.

``--data-dir`` defaults to config.py's ``data_dir``, the folder train.py reads without its own
``--data-dir``, so records prepared here are the ones a run finds. Prints the record folder on success;
on failure prints the one-paragraph reason and exits 1; Ctrl-C, SIGTERM or SIGHUP end it with one line
and 130, 143 or 129, what was half-done removed.
"""
import argparse
import sys

from config import config_train
from data import DATASETS, DataError, prepare
from training.stop import run_stoppable


def _parse(argv):
    """Return the parsed command line."""
    parser = argparse.ArgumentParser(prog="python -m data", description=(
        "Download (or take from disk), verify and convert a dataset to TFRecords under DATA_DIR/NAME/."))
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--data-dir", default=config_train.data_dir,
                        help="folder for archives and records (default: %(default)s, config.py's data_dir, "
                             "which train.py reads)")
    parser.add_argument("--url", help="mirror to download from (http, https or file URL; for "
                                      "mnist and fashion-mnist the folder URL of the four IDX files)")
    parser.add_argument("--archive", help="archive already on disk (for mnist and fashion-mnist: a folder "
                                          "holding the four IDX files)")
    parser.add_argument("--md5", help="MD5 of the archive at --url or --archive (default: the "
                                      "official one, not checked for a --url mirror)")
    return parser.parse_args(argv)


def main(argv=None):
    """Run ``prepare`` for the command line; return the process exit status."""
    return run_stoppable(lambda: _prepare(argv), "python -m data: interrupted; the partial download or "
                                                  "conversion was removed")


def _prepare(argv):
    """Prepare the dataset named by the command line ``argv``; return the exit status."""
    args = _parse(argv)
    try:
        record_dir = prepare(args.dataset, args.data_dir, url=args.url, archive=args.archive,
                             md5=args.md5)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(record_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

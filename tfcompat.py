"""The one place TensorFlow is imported: the TF 1.x graph API on TensorFlow 2.x.

Every other module does ``from tfcompat import tf`` and writes TF 1.x code
(graphs, sessions, ``tf.train.Optimizer``, ``Saver``, ``FileWriter``, ``tf.data``).

Resource variables are switched back on after ``disable_v2_behavior``: TF 1.x had
them too (``use_resource=True``), and their reads and writes are ordered by control
dependencies, which the Langevin ``tf.while_loop`` of Entropy-SGD relies on.
"""
import contextlib
import logging
import os
import re
import sys
import tempfile

# Hide TensorFlow's C++ INFO/WARNING lines unless the user asked for them; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Lines the C++ runtime prints while loading, before TF_CPP_MIN_LOG_LEVEL is read: INFO records
# ("I0000 ... Could not find cuda drivers"), absl's banner, and the failed cuInit of a machine
# without an NVIDIA driver (which only means: no GPU, run on the CPU).
_STARTUP_NOISE = re.compile(
    r"^(I\d{4} |WARNING: All log messages before absl::InitializeLog|E\d{4} .*failed call to cuInit)")


@contextlib.contextmanager
def _filtered_stderr():
    """Capture file descriptor 2 while the block runs, then replay all but the start-up noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0" or not _STARTUP_NOISE.match(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


with _filtered_stderr():
    import tensorflow.compat.v1 as tf

    # Probe the devices now, inside the filter: this is where CUDA is first initialised.
    tf.config.list_physical_devices("GPU")

# Deprecation notices from compat.v1 go through the "tensorflow" logger at WARNING;
# real errors are logged at ERROR and raised as exceptions, so they are not hidden.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
tf.disable_v2_behavior()
tf.enable_resource_variables()


def first_line(error):
    """Return one line of an exception's message that says what went wrong.

    TensorFlow's op errors run over many lines: "Graph execution error:", where the op was defined,
    "Node: 'NAME'", then the cause, then "[[...]]" locating the op; the cause is what the user needs.
    """
    lines = [line.strip() for line in str(getattr(error, "message", None) or error).splitlines()]
    lines = [line for line in lines if line and not line.startswith("[[")]
    nodes = [i for i, line in enumerate(lines) if line.startswith("Node:")]
    if nodes:
        lines = lines[nodes[-1] + 1:]
    return lines[0] if lines else type(error).__name__


__all__ = ["tf", "first_line"]

"""Which local devices towers (-g) and Parle replicas run on, and the session configuration for them."""
from tfcompat import tf


def _gpu_count():
    return len(tf.config.list_physical_devices("GPU"))


def local_devices(n):
    """Return ``n`` device names: the GPUs in turn (several per GPU when n exceeds them: they share it),
    or, on a machine without GPUs, ``n`` CPU devices (``session_config`` creates them)."""
    gpus = _gpu_count()
    if gpus:
        return ["/gpu:%d" % (i % gpus) for i in range(n)]
    return ["/cpu:%d" % i for i in range(n)]


def session_config(n):
    """Return the ConfigProto of a session whose graph places work on ``local_devices(n)``."""
    config = tf.ConfigProto(allow_soft_placement=True)
    if not _gpu_count() and n > 1:
        config.device_count["CPU"] = n
    return config

"""What only a GPU shows: the training step runs there whole, not partly on the host (skipped without a GPU).

TensorFlow puts an op on the CPU without a word where the GPU has no kernel for it (soft placement, which
the project's sessions allow) or where the graph pins it there. One float op of the Langevin loop on the
host would copy a tensor across the bus in every inner step, and a float op of the input on the host would
mean the images are normalised there, not on the device as the pipeline intends. So every op that one
traced step runs and that reads or makes a float tensor must run on the GPU: the Entropy-SGD step on a
small model, then the real training step of train.py's graph at each precision. Float scalars (a learning
rate, a loss scale) may be computed on the host, as TF does with small integer ops: they cost a copy of
four bytes.

The rest of the suite runs on the GPU as it stands when the machine has one (``bench/on_device.sh`` names
the files): the optimizers against their NumPy references, the models, train.py end to end. This file adds
what those cannot see. Its first test checks the check itself, on any machine.
"""
import numpy as np
import pytest

import train_fixtures as fx
from config import config_train
from esgd_reference import init_params, make_data, mean_loss
from optimizers import EntropySGD
from tfcompat import tf
from training import graph, settings
from training.dataset import record_info
from training.devices import session_config
from training.trace import traced_ops

HAS_GPU = bool(tf.config.list_physical_devices("GPU"))
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU (bench/on_device.sh)")


# Ops that read only a tensor's shape, which TF keeps on the host, whatever the tensor's device.
SHAPE_OPS = ("Shape", "ShapeN", "Size", "Rank")


def _float_tensor(t):
    """Whether ``t`` is a float tensor not known to be a scalar."""
    return t.dtype.is_floating and t.shape.rank != 0


def float_ops_off(sess, op, device_type):
    """Run ``op`` once, traced; return (how many float ops it ran, [(name, type, device)] of those that ran
    on a device other than of ``device_type``: "GPU" or "CPU").

    A float op is an op of the graph, other than ``SHAPE_OPS``, that reads or makes a float tensor (not a
    scalar), or a compiled XLA cluster (``_XlaRun``, added by TensorFlow: its arithmetic is float). Ops that
    TensorFlow's graph passes add otherwise (a layout optimiser's transposes) are not in the graph and not
    checked.
    """
    floats = {o.name for o in sess.graph.get_operations() if o.type not in SHAPE_OPS
              and any(_float_tensor(t) for t in list(o.inputs) + list(o.outputs))}
    ran = [(name, op_type, device) for name, op_type, device in traced_ops(sess, op)
           if name in floats or op_type == "_XlaRun"]
    return len(ran), [r for r in ran if not r[2].rpartition("device:")[2].upper().startswith(device_type)]


def _two_layer_step(fused, data_device=None):
    """The test suite's two-layer model (esgd_reference) on one constant batch, an EntropySGD train op on
    it (L = 3), in the default graph; ``data_device`` pins the batch (default: placed as TF places it)."""
    xs, ys = make_data()
    with tf.device(data_device):
        x, y = tf.constant(xs[0]), tf.constant(ys[0])
    vs = [tf.get_variable("p%d" % i, initializer=tf.constant(p)) for i, p in enumerate(init_params("two_layer"))]

    def loss_fn():
        return mean_loss("two_layer", vs, x, y)

    return EntropySGD(loss_fn, 0.1, L=3, fused=fused).minimize(loss_fn())


def test_the_check_finds_a_float_op_placed_on_another_device():
    # On two CPU devices: the batch pinned to the second is found, with its name; everything else ran on
    # the first. Shows that the GPU tests below can fail, on a machine without a GPU.
    with tf.Graph().as_default():
        with tf.device("/cpu:0"):
            train = _two_layer_step(fused=False, data_device="/cpu:1")
        config = tf.ConfigProto(allow_soft_placement=True, device_count={"CPU": 2})
        with tf.Session(config=config) as sess:
            sess.run(tf.global_variables_initializer())
            ran, off = float_ops_off(sess, train, "CPU:0")
    assert ran > 20
    assert sorted(name for name, _, _ in off) == ["Const"]  # the batch's x (y is int32)
    assert all(device.endswith("CPU:1") for _, _, device in off)


@needs_gpu
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "per-variable"])
def test_every_float_op_of_an_entropy_sgd_step_runs_on_the_gpu(fused):
    with tf.Graph().as_default():
        train = _two_layer_step(fused)
        with tf.Session(config=session_config(1)) as sess:
            sess.run(tf.global_variables_initializer())
            ran, off = float_ops_off(sess, train, "GPU")
    assert ran
    assert not off, "float ops on the host: %s" % off


@needs_gpu
@pytest.mark.parametrize("optimizer", [["-opt", "entropy-sgd", "-L", "2"], ["-opt", "momentum"],
                                       ["-opt", "parle", "-L", "2", "--replicas", "2"]],
                         ids=["entropy-sgd", "momentum", "parle"])
@pytest.mark.parametrize("precision", [[], ["--precision", "bf16"], ["--precision", "bf16", "--xla"],
                                       ["--precision", "fp16"]], ids=["fp32", "bf16", "bf16-xla", "fp16"])
def test_every_float_op_of_a_training_step_runs_on_the_gpu(data_dir, optimizer, precision):
    """train.py's graph (training.graph.build) on the tiny LeNet records: the uint8 batch goes to the GPU
    and is normalised there, and the model, the loss scale and the optimizer run there."""
    s = settings.parse_settings(fx.TINY + ["--data-dir", str(data_dir)] + optimizer + precision, config_train)
    record_dir = str(data_dir / "fashion-mnist")
    with tf.Graph().as_default():
        g = graph.build(s, record_info(record_dir), record_dir)
        with tf.Session(config=session_config(g.num_devices)) as sess:
            sess.run(g.init)
            sess.run(g.train_init, {g.start_batch: 0})
            ran, off = float_ops_off(sess, g.train_op, "GPU")
            loss = sess.run(g.fetches["loss"])
    assert ran  # traced: with --xla most of the step is a few compiled clusters
    assert not off, "float ops on the host: %s" % off
    assert np.isfinite(loss)

"""Mixed precision in models/: bf16 and fp16 builds compute in the low dtype on float32 variables.

Tolerances are in units of the low dtype's machine epsilon (bf16 2^-7, fp16 2^-10, from ml_dtypes):
- logits: every layer rounds its input and weights to eps/2 and batch norm renormalises after every
  convolution, so the rounding errors of the layers add up instead of compounding with depth: a few
  eps of the logits' scale (measured: at most 3 eps for every model and both dtypes).
- gradients (batch norm in training mode): dominated by the ReLU and max-pool units whose on/off
  state the rounding flips. Their number grows like eps and their contributions have random signs,
  so the error grows like sqrt(eps) (measured: 1 to 3 sqrt(eps) of the gradient's norm, the same
  constant for bf16 and fp16). Its component along the fp32 gradient is far smaller: the low-precision
  gradient is the fp32 one plus noise, not a rescaled one (measured: within 0.35 sqrt(eps)).
"""

import ml_dtypes
import numpy as np
import pytest

from models import MODEL_NAMES, get_model, layers
from tfcompat import tf

from test_models import SMALL, make_config

LOW = ("bf16", "fp16")
EPS = {"bf16": float(ml_dtypes.finfo(ml_dtypes.bfloat16).eps), "fp16": float(np.finfo(np.float16).eps)}
LOGIT_TOL, GRAD_TOL, PROJECTION_TOL = 8.0, 5.0, 1.0  # x eps, x sqrt(eps), x sqrt(eps): see the docstring
# The ops that carry a model's arithmetic, forward and backward; each must run in the compute dtype.
COMPUTE_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul",
               "FusedBatchNormV3", "FusedBatchNormGradV3")
# fp16 training scales the loss so that small gradients do not underflow; a fixed scale stands in
# here for the optimizer's dynamic one.
FP16_LOSS_SCALE = 128.0


def test_compute_dtypes_and_bad_precision():
    assert layers.PRECISIONS == ("fp32", "bf16", "fp16")
    assert [layers.compute_dtype(p) for p in layers.PRECISIONS] == [tf.float32, tf.bfloat16, tf.float16]
    with pytest.raises(ValueError) as err:
        layers.compute_dtype("fp8")
    assert all(p in str(err.value) for p in layers.PRECISIONS)
    with tf.Graph().as_default(), pytest.raises(ValueError, match="bf16"):
        get_model("lenet")(tf.zeros([1, 28, 28, 1]), False, 10, make_config(precision="float16"))


def loss_scale(precision):
    return FP16_LOSS_SCALE if precision == "fp16" else 1.0


def build(name, precision, images, labels):
    """Build model ``name`` at ``precision`` in the default graph: logits in both batch-norm modes (no
    dropout, so runs compare), float32 gradients of the training-mode loss, and the moving statistics."""
    config = make_config(precision=precision, **SMALL[name][1])
    model = get_model(name)
    train_logits = model(tf.constant(images), True, 10, config, use_dropout=False)
    eval_logits = model(tf.constant(images), False, 10, config)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=train_logits))
    scale = loss_scale(precision)
    grads = [g / scale for g in tf.gradients(loss * scale, tf.trainable_variables())]
    moving = [v for v in tf.global_variables() if v not in tf.trainable_variables()]
    return dict(train=train_logits, eval=eval_logits, grads=grads, moving=moving,
                updates=tf.get_collection(tf.GraphKeys.UPDATE_OPS))


def signature():
    """Return [(name, shape, dtype)] of the default graph's global variables: what a checkpoint holds."""
    return [(v.name, v.shape.as_list(), v.dtype.base_dtype) for v in tf.global_variables()]


def op_dtypes(graph):
    """Return [(op type, its T attribute)] of the graph's COMPUTE_OPS."""
    return [(op.type, op.get_attr("T")) for op in graph.get_operations() if op.type in COMPUTE_OPS]


def run(handles, sess):
    """Return the logits, gradients and moving statistics after one run of the batch-norm updates."""
    values = sess.run({k: handles[k] for k in ("train", "eval", "grads")})
    sess.run(handles["updates"])
    values["moving"] = sess.run(handles["moving"])
    return values


@pytest.mark.parametrize("precision", LOW)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_low_precision_model_matches_fp32_on_the_same_checkpoint(name, precision, tmp_path):
    """Build fp32, save its initial weights; build ``precision`` in a fresh graph and restore them."""
    shape = SMALL[name][0]
    rng = np.random.RandomState(0)
    images = rng.randn(16, *shape).astype(np.float32)
    labels = rng.randint(0, 10, size=16).astype(np.int32)
    low_dtype = layers.compute_dtype(precision)

    with tf.Graph().as_default() as graph:
        tf.set_random_seed(0)
        handles = build(name, "fp32", images, labels)
        fp32_signature, fp32_ops = signature(), op_dtypes(graph)
        assert "Cast" not in {op.type for op in graph.get_operations()}  # fp32 adds nothing to the graph
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            path = tf.train.Saver().save(sess, str(tmp_path / "fp32"))
            expected = run(handles, sess)

    with tf.Graph().as_default() as graph:
        handles = build(name, precision, images, labels)
        assert signature() == fp32_signature  # same names and shapes, all float32: one checkpoint fits both
        assert {dtype for _, _, dtype in signature()} == {tf.float32}
        assert [op for op, _ in op_dtypes(graph)] == [op for op, _ in fp32_ops]
        assert {dtype for _, dtype in op_dtypes(graph)} == {low_dtype}
        assert handles["train"].dtype == handles["eval"].dtype == tf.float32
        assert all(g.dtype == tf.float32 for g in handles["grads"])
        assert len(handles["updates"]) == 2 * sum("moving_mean" in v.name for v in handles["moving"])
        assert all(u.dtype.base_dtype == tf.float32 for u in handles["updates"])
        with tf.Session() as sess:
            tf.train.Saver().restore(sess, path)
            got = run(handles, sess)

    eps = EPS[precision]
    for mode in ("train", "eval"):
        scale = np.abs(expected[mode]).max()
        np.testing.assert_allclose(got[mode], expected[mode], rtol=0, atol=LOGIT_TOL * eps * scale)
    for before, after in zip(expected["moving"], got["moving"]):  # the batch statistics of every layer
        np.testing.assert_allclose(after, before, rtol=0, atol=LOGIT_TOL * eps * np.abs(before).max())
    want = np.concatenate([g.ravel() for g in expected["grads"]])
    have = np.concatenate([g.ravel() for g in got["grads"]])
    assert np.linalg.norm(have - want) <= GRAD_TOL * np.sqrt(eps) * np.linalg.norm(want)
    assert abs(want @ have / (want @ want) - 1.0) <= PROJECTION_TOL * np.sqrt(eps)


@pytest.mark.parametrize("precision", LOW)
def test_lenet_learns_a_fixed_batch_in_low_precision(precision):
    """Plain SGD on float32 variables with gradients of the low-precision model (fp16 loss-scaled)."""
    rng = np.random.RandomState(1)
    images = rng.randn(16, 28, 28, 1).astype(np.float32)
    labels = rng.randint(0, 10, size=16).astype(np.int32)
    scale = loss_scale(precision)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        logits = get_model("lenet")(tf.constant(images), True, 10, make_config(precision=precision),
                                    use_dropout=False)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        weights = tf.trainable_variables()
        grads = [g / scale for g in tf.gradients(loss * scale, weights)]
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            train = tf.train.GradientDescentOptimizer(0.1).apply_gradients(zip(grads, weights))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            losses = [sess.run([loss, train])[0] for _ in range(30)]
            assert all(np.all(np.isfinite(v)) for v in sess.run(weights))
    assert np.mean(losses[-5:]) < 0.2 * np.mean(losses[:3]), losses

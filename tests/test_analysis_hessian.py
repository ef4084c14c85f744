"""Hessian top eigenvalues on losses whose Hessian is known in closed form.

0.5 z^T A z has Hessian A for every z; the test builds A = Q diag(lambda) Q^T from a random orthogonal
Q and chosen eigenvalues, so the answer is the chosen numbers, not another eigensolver's output.

The filter-normalised Hessian D H D is checked on tiny batch-norm networks against a Hessian formed
entry by entry (one gradient of each gradient component, no Hessian-vector products) and a D formed by
looping over output units, and for its point: invariance when a layer feeding batch norm is rescaled.
"""
import numpy as np
import pytest

from analysis.hessian import build_hvp, filter_scale, top_eigenvalues
from models import layers
from tfcompat import tf


def matrix_with_eigenvalues(eigenvalues, seed):
    """Return the symmetric Q diag(eigenvalues) Q^T for a random orthogonal Q (QR of a Gaussian matrix)."""
    q, _ = np.linalg.qr(np.random.RandomState(seed).standard_normal((len(eigenvalues),) * 2))
    return (q * np.asarray(eigenvalues)) @ q.T


def quadratic(shapes, a, seed):
    """Variables of ``shapes`` (random values) and the loss 0.5 z^T A z of their concatenation z."""
    rng = np.random.RandomState(seed)
    var_list = [tf.get_variable("w%d" % i, initializer=rng.standard_normal(s).astype(np.float32))
                for i, s in enumerate(shapes)]
    z = tf.concat([tf.reshape(v, [-1]) for v in var_list], 0)
    loss = 0.5 * tf.reduce_sum(z * tf.linalg.matvec(tf.constant(a, tf.float32), z))
    return loss, var_list


def eigenvalues_of(loss_and_vars, k, iters, seed=0, extra_vars=()):
    loss, var_list = loss_and_vars
    hvp = build_hvp(loss, list(var_list) + list(extra_vars))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return hvp, top_eigenvalues(sess, hvp, k=k, iters=iters, seed=seed)


def test_top_eigenvalues_of_a_quadratic_within_one_percent():
    spectrum = np.concatenate([[25.0, 18.0, 12.0, 9.0], np.linspace(-3.0, 4.0, 196)])
    a = matrix_with_eigenvalues(spectrum, seed=1)
    with tf.Graph().as_default():
        hvp, top = eigenvalues_of(quadratic([(200,)], a, seed=2), k=4, iters=40)
    assert hvp.dim == 200
    np.testing.assert_allclose(top, [25.0, 18.0, 12.0, 9.0], rtol=0.01)


def test_several_variables_are_one_parameter_vector():
    # 3x2 + 4 = 10 parameters; with iters = 10 Lanczos spans everything, so every eigenvalue is exact.
    spectrum = [7.0, 5.0, 3.0, 2.0, 1.5, 1.0, 0.5, -0.5, -2.0, -4.0]
    a = matrix_with_eigenvalues(spectrum, seed=3)
    with tf.Graph().as_default():
        unused = tf.get_variable("unused", initializer=np.ones(3, np.float32))  # zero Hessian rows: eigenvalue 0
        hvp, top = eigenvalues_of(quadratic([(3, 2), (4,)], a, seed=4), k=11, iters=13, extra_vars=[unused])
    assert hvp.dim == 13
    np.testing.assert_allclose(top, sorted(spectrum + [0.0] * 3, reverse=True)[:11], rtol=1e-4, atol=1e-4)


def test_the_hessian_is_taken_at_the_current_weights_with_the_fed_batch():
    # f(w) = sum_i c_i exp(w_i): Hessian diag(c_i exp(w_i)), c fed as the "batch".
    w0 = np.log(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], np.float32))
    c = np.array([2.0, 1.0, 0.5, 3.0, 1.0, 0.25], np.float32)
    with tf.Graph().as_default():
        w = tf.get_variable("w", initializer=w0)
        batch = tf.placeholder(tf.float32, [6])
        hvp = build_hvp(tf.reduce_sum(batch * tf.exp(w)), [w])
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            top = top_eigenvalues(sess, hvp, k=3, iters=6, seed=5, feed_dict={batch: c})
    np.testing.assert_allclose(top, [12.0, 5.0, 2.0], rtol=1e-5)


def test_same_seed_same_answer_and_bad_arguments():
    a = matrix_with_eigenvalues(np.linspace(1.0, 10.0, 30), seed=6)
    with tf.Graph().as_default():
        loss, var_list = quadratic([(30,)], a, seed=7)
        hvp = build_hvp(loss, var_list)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            first = top_eigenvalues(sess, hvp, k=2, iters=5, seed=11)
            again = top_eigenvalues(sess, hvp, k=2, iters=5, seed=11)
            other = top_eigenvalues(sess, hvp, k=2, iters=5, seed=12)
            np.testing.assert_array_equal(first, again)
            assert not np.array_equal(first, other)  # 5 steps do not converge: the start vector shows
            with pytest.raises(ValueError, match="k must be between 1"):
                top_eigenvalues(sess, hvp, k=31)
            with pytest.raises(ValueError, match="iters"):
                top_eigenvalues(sess, hvp, k=3, iters=2)


def test_filter_scale_is_the_norm_of_each_output_unit():
    dense = np.array([[3.0, 0.0], [4.0, 1.0]])  # output units are columns: norms 5 and 1
    conv = np.zeros((1, 2, 1, 2))
    conv[0, :, 0, 0], conv[0, :, 0, 1] = [1.0, 2.0], [2.0, 2.0]  # filters of norm sqrt(5) and sqrt(8)
    bias = np.array([7.0, -2.0])
    d = filter_scale([dense, bias, conv])
    np.testing.assert_allclose(d, [5, 1, 5, 1, 1, 1, 5 ** 0.5, 8 ** 0.5, 5 ** 0.5, 8 ** 0.5])


def bn_net(kind):
    """Build a tiny network whose first layer feeds batch norm, in inference mode (graph only).

    ``kind`` "conv": a bias-free 2x2 convolution with 3 filters on 6 images of 3x3x1; "dense": a bias-free
    4 -> 3 linear layer on 6 vectors. Then batch norm reading its moving statistics, softplus (smooth, so every
    block has curvature of its own) and a linear layer with bias to 2 classes, mean cross-entropy on fixed
    labels. Returns (loss, trainable variables, the first layer's kernel, moving mean, moving variance).
    """
    rng = np.random.RandomState(0)
    if kind == "conv":
        x = tf.constant(rng.standard_normal((6, 3, 3, 1)).astype(np.float32))
        x = layers.batch_norm(layers.conv2d(x, 3, 2, 1, 0, "NHWC", None, "first"), False, "NHWC", "bn")
        x = layers.flatten(tf.nn.softplus(x), "NHWC")
    else:
        x = tf.constant(rng.standard_normal((6, 4)).astype(np.float32))
        x = tf.nn.softplus(layers.batch_norm(layers.dense(x, 3, False, "first"), False, "NHWC", "bn"))
    logits = layers.dense(x, 2, True, "out")
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=[0, 1, 1, 0, 1, 0],
                                                                         logits=logits))
    by_name = {v.op.name.split("/", 1)[1]: v for v in tf.global_variables() if v.op.name.startswith("bn/")}
    kernel = [v for v in tf.trainable_variables() if v.op.name.startswith("first/")]
    return loss, tf.trainable_variables(), kernel[0], by_name["moving_mean"], by_name["moving_variance"]


def set_random_values(sess, seed):
    """Give every variable of the default graph a random value (non-trivial batch-norm statistics too)."""
    rng = np.random.RandomState(seed)
    for v in tf.global_variables():
        shape = v.shape.as_list()
        if v.op.name.endswith("moving_variance"):
            value = rng.uniform(1.0, 2.0, shape)
        elif v.op.name.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.standard_normal(shape)
        v.load(value.astype(np.float32), sess)


def dense_hessian(loss, var_list):
    """Return (graph only) the full Hessian of ``loss``, row by row: the gradient of each gradient entry."""
    grad = tf.concat([tf.reshape(g, [-1]) for g in tf.gradients(loss, var_list)], 0)
    rows = [tf.concat([tf.reshape(h, [-1]) for h in tf.gradients(grad[i], var_list)], 0)
            for i in range(grad.shape.as_list()[0])]
    return tf.stack(rows)


def filter_norms_by_loops(values):
    """The reference D: each output unit's (last axis) weights get their norm; rank < 2 variables get 1."""
    parts = []
    for value in values:
        d = np.ones(value.shape)
        if value.ndim >= 2:
            for j in range(value.shape[-1]):
                d[..., j] = np.sqrt(np.sum(np.square(value[..., j].astype(np.float64))))
        parts.append(d.ravel())
    return np.concatenate(parts)


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_normalised_eigenvalues_are_those_of_d_h_d_formed_densely(kind):
    with tf.Graph().as_default():
        loss, var_list, _, _, _ = bn_net(kind)
        hvp, full = build_hvp(loss, var_list), dense_hessian(loss, var_list)
        with tf.Session() as sess:
            set_random_values(sess, seed=1)
            h, values = sess.run([full, var_list])
            d = filter_scale(values)
            # iters = the parameter count: Lanczos spans the space, so the top eigenvalues are exact
            top = top_eigenvalues(sess, hvp, k=4, iters=hvp.dim, seed=2, scale=d)
    reference = filter_norms_by_loops(values)
    np.testing.assert_allclose(d, reference, rtol=1e-12)
    assert not np.allclose(reference, 1.0)  # the scaling is not the identity
    h = 0.5 * (h + h.T)  # float32 round-off leaves the formed Hessian slightly asymmetric
    expected = np.linalg.eigvalsh(reference[:, None] * h * reference[None, :])[::-1][:4]
    raw = np.linalg.eigvalsh(h)[::-1][:4]
    np.testing.assert_allclose(top, expected, rtol=1e-4, atol=1e-5 * abs(expected[0]))
    assert not np.allclose(top, raw, rtol=1e-2)  # D H D is not H here: the comparison can fail


# conv: every filter by 3 (the kernel's Hessian block / 9); dense: each unit by its own factor
@pytest.mark.parametrize("kind, factors", [("conv", [3.0, 3.0, 3.0]), ("dense", [3.0, 0.5, 2.0])])
def test_normalised_eigenvalues_do_not_change_when_a_layer_feeding_batch_norm_is_rescaled(kind, factors):
    a = np.asarray(factors, np.float32)
    with tf.Graph().as_default():
        loss, var_list, kernel, mean, variance = bn_net(kind)
        hvp, full = build_hvp(loss, var_list), dense_hessian(loss, var_list)
        start = var_list.index(kernel)
        block = slice(sum(hvp.sizes[:start]), sum(hvp.sizes[:start + 1]))

        def measure(sess):
            scale = filter_scale(sess.run(var_list))
            return (sess.run(loss), sess.run(full)[block, block],
                    top_eigenvalues(sess, hvp, k=2, iters=hvp.dim, seed=3),
                    top_eigenvalues(sess, hvp, k=2, iters=hvp.dim, seed=3, scale=scale))

        with tf.Session() as sess:
            set_random_values(sess, seed=4)
            loss0, h0, raw0, normalised0 = measure(sess)
            w, m, v = sess.run([kernel, mean, variance])
            kernel.load(w * a, sess)  # output units are the last axis
            mean.load(m * a, sess)
            variance.load(v * a * a, sess)
            loss1, h1, raw1, normalised1 = measure(sess)
    # batch norm's epsilon (1e-5 beside variances of 0.25 to 18) is all that is not rescaled
    assert loss1 == pytest.approx(loss0, rel=1e-5)
    per_entry = np.broadcast_to(a, w.shape).ravel()
    np.testing.assert_allclose(h1, h0 / np.outer(per_entry, per_entry), rtol=1e-3, atol=1e-5 * abs(h0).max())
    assert not np.allclose(raw1, raw0, rtol=0.05)  # the raw measure moves with the weight norms
    np.testing.assert_allclose(normalised1, normalised0, rtol=1e-4)

"""Hessian top eigenvalues on losses whose Hessian is known in closed form.

0.5 z^T A z has Hessian A for every z; the test builds A = Q diag(lambda) Q^T from a random orthogonal
Q and chosen eigenvalues, so the answer is the chosen numbers, not another eigensolver's output.
"""
import numpy as np
import pytest

from analysis.hessian import build_hvp, top_eigenvalues
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

"""The local-entropy estimate on a quadratic loss, against a NumPy transcription of the Langevin recursion.

f(x) = 0.5 (x - c)^T A (x - c) with epsilon = 0: the Langevin iterates are a linear recursion
    g = A (x' - c) + wd x' ; m' = momentum m' + g ; g = g + momentum m' (Nesterov) or m'
    x' <- x' - eta (g - gamma (x - x')) ;  mu <- a mu + (1 - a) x'
from x' = mu = x, m' = 0, written out below in float64 from the paper's update (not from the code).
"""
import numpy as np
import pytest

from analysis.local_entropy import build_local_entropy, measure
from tfcompat import tf

SHAPES = [(2, 3), (4,)]


def reference(x, a, c, L, gamma, eta, mu_decay, momentum, nesterov, wd):
    """Return (||x - mu||, mean f over x'_0..x'_{L-1}, ||x - x'_L||) of the recursion above."""
    xp, mu, m = x.copy(), x.copy(), np.zeros_like(x)
    losses = []
    for _ in range(L):
        losses.append(0.5 * (xp - c) @ a @ (xp - c))
        g = a @ (xp - c) + wd * xp
        m = momentum * m + g
        g = g + momentum * m if nesterov else m
        xp = xp - eta * (g - gamma * (x - xp))
        mu = mu_decay * mu + (1 - mu_decay) * xp
    return np.linalg.norm(x - mu), np.mean(losses), np.linalg.norm(x - xp)


def problem(seed=0, scale=1.0):
    """A, c and the starting weights x of the quadratic (A symmetric positive definite, eigenvalues 0.5..3)."""
    rng = np.random.RandomState(seed)
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    a = scale * (q * np.linspace(0.5, 3.0, 10)) @ q.T
    return a, rng.standard_normal(10), rng.standard_normal(10).astype(np.float32)


def build(a, x0, **kwargs):
    """Graph of the quadratic over two variables (c fed), and its probe; returns (vars, c placeholder, probe)."""
    parts = np.split(x0, [6])
    var_list = [tf.get_variable("w%d" % i, initializer=p.reshape(s)) for i, (p, s) in enumerate(zip(parts, SHAPES))]
    c = tf.placeholder(tf.float32, [10])
    a_t = tf.constant(a, tf.float32)

    def loss_fn():
        z = tf.concat([tf.reshape(v, [-1]) for v in var_list], 0) - c
        return 0.5 * tf.reduce_sum(z * tf.linalg.matvec(a_t, z))

    return var_list, c, build_local_entropy(loss_fn, var_list, **kwargs)


@pytest.mark.parametrize("momentum, nesterov, wd", [(0.0, False, 0.0), (0.9, True, 1e-2), (0.5, False, 0.0)])
def test_estimate_matches_the_langevin_recursion_and_leaves_x_alone(momentum, nesterov, wd):
    a, c, x0 = problem()
    hyper = dict(L=7, gamma=0.3, langevin_lr=0.1, mu_decay=0.75, momentum=momentum, nesterov=nesterov)
    with tf.Graph().as_default():
        var_list, c_ph, probe = build(a, x0, epsilon=0.0, weight_decay=wd, **hyper)
        with tf.Session() as sess:
            sess.run(tf.variables_initializer(var_list))
            first = measure(sess, probe, {c_ph: c})
            second = measure(sess, probe, {c_ph: c})  # no memory between measurements, gamma fixed
            after = np.concatenate([np.ravel(v) for v in sess.run(var_list)])
    want = reference(x0.astype(np.float64), a, c, L=7, gamma=0.3, eta=0.1, mu_decay=0.75, momentum=momentum,
                     nesterov=nesterov, wd=wd)
    got = (first["x_mu_norm"], first["inner_loss"], first["x_xprime_norm"])
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert first == second
    assert first["gamma"] == pytest.approx(0.3)
    np.testing.assert_array_equal(after, x0)


def test_weights_are_restored_even_when_the_langevin_steps_blow_up():
    a, c, x0 = problem(scale=1e4)
    with tf.Graph().as_default():
        var_list, c_ph, probe = build(a, x0, L=20, gamma=0.0, langevin_lr=10.0, epsilon=0.0, momentum=0.0)
        with tf.Session() as sess:
            sess.run(tf.variables_initializer(var_list))
            stats = measure(sess, probe, {c_ph: c})
            after = np.concatenate([np.ravel(v) for v in sess.run(var_list)])
    assert not np.isfinite(stats["x_mu_norm"])
    np.testing.assert_array_equal(after, x0)


def test_the_probe_keeps_its_variables_to_itself():
    a, _, x0 = problem()
    with tf.Graph().as_default():
        var_list, _, probe = build(a, x0, L=3)
        own = set(probe.variables)
        assert own and not own & set(var_list)
        # slots (anchor, momentum) for both variables and the scoping counter
        assert len(own) == 2 * len(var_list) + 1
    with pytest.raises(ValueError, match="L >= 1"):
        build_local_entropy(lambda: tf.constant(0.0), L=0)


def test_with_noise_the_estimate_is_a_function_of_the_seed():
    """epsilon > 0: every measurement with one seed draws the same noise, another seed other noise."""
    a, c, x0 = problem()
    stats = []
    for seed in (3, 3, 4):
        with tf.Graph().as_default():
            var_list, c_ph, probe = build(a, x0, L=5, epsilon=0.1, seed=seed)
            with tf.Session() as sess:
                sess.run(tf.variables_initializer(var_list))
                stats += [measure(sess, probe, {c_ph: c}) for _ in range(2)]
    assert stats[0] == stats[1] == stats[2] == stats[3]  # the same graph again, and a graph of its own
    assert stats[4]["x_mu_norm"] != stats[0]["x_mu_norm"]

"""Parle against an independent NumPy transcription (optimizers/parle.py's docstring, from the paper):
two and three replicas with their own fixed data, epsilon = 0; one replica is Entropy-SGD exactly;
the asynchronous "delta" update of x̄ keeps it the mean of the replicas."""
import numpy as np
import pytest

from esgd_reference import build_tf_model, init_params, make_data, two_layer_grads
from optimizers import EntropySGD, ParleReplica, Replica, parle_step
from tfcompat import tf

HYPER = dict(learning_rate=0.5, L=3, gamma=0.1, scoping=0.2, langevin_lr=0.2, mu_decay=0.75,
             momentum=0.9, nesterov=True, weight_decay=1e-2)
RHO, RHO_SCOPING = 0.3, 0.5


def reference_parle(params, streams, steps, learning_rate, L, gamma, scoping, langevin_lr, mu_decay, momentum,
                    nesterov, weight_decay, rho, rho_scoping):
    """The paper's Parle with Entropy-SGD replicas, float64, epsilon = 0. ``streams[a]``: replica a's
    batches in order. Returns (x̄, [x^a]) after ``steps`` outer steps; every replica starts at ``params``."""
    n = len(streams)
    ref = [p.astype(np.float64) for p in params]
    xs = [[p.copy() for p in ref] for _ in range(n)]
    ms = [[np.zeros_like(p) for p in ref] for _ in range(n)]
    its = [iter(s) for s in streams]

    def nesterov_step(buf, g):
        buf *= momentum
        buf += g
        return g + momentum * buf if nesterov else buf.copy()

    for k in range(steps):
        g_k, rho_k = gamma * (1 + scoping) ** k, rho * (1 + rho_scoping) ** k
        for a in range(n):
            x = xs[a]
            xp, mu = [p.copy() for p in x], [p.copy() for p in x]
            mp = [np.zeros_like(p) for p in x]
            for _ in range(L):
                grads = two_layer_grads(xp, next(its[a]))
                for j in range(len(x)):
                    g = nesterov_step(mp[j], grads[j] + weight_decay * xp[j]) - g_k * (x[j] - xp[j])
                    xp[j] = xp[j] - langevin_lr * g
                    mu[j] = mu_decay * mu[j] + (1 - mu_decay) * xp[j]
            for j in range(len(x)):
                d = x[j] - mu[j] + weight_decay * x[j] + rho_k * (x[j] - ref[j])
                x[j] = x[j] - learning_rate * nesterov_step(ms[a][j], d)
        ref = [np.mean([xs[a][j] for a in range(n)], axis=0) for j in range(len(ref))]
    return ref, xs


def run_parle(params, data, steps, update="mean", num_replicas=None):
    """Build Parle over replicas with their own (xs, ys); return (x̄, [x^a], per-step stats) after ``steps``."""
    with tf.Graph().as_default():
        with tf.variable_scope("reference"):
            reference = [tf.get_variable("p%d" % i, initializer=tf.constant(p)) for i, p in enumerate(params)]
        replicas = []
        for a, (xs, ys) in enumerate(data):
            with tf.variable_scope("replica_%d" % a):
                vs, loss_fn, _ = build_tf_model("two_layer", params, xs, ys)
            opt = ParleReplica(loss_fn, reference=dict(zip(vs, reference)), rho=RHO, rho_scoping=RHO_SCOPING,
                               epsilon=0.0, name="Parle_%d" % a, **HYPER)
            replicas.append(Replica(opt, loss_fn(), vs))
        gs = tf.train.get_or_create_global_step()
        step, stats = parle_step(replicas, reference, num_replicas=num_replicas, update=update, global_step=gs)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            history = [sess.run([step, stats])[1] for _ in range(steps)]
            assert sess.run(gs) == steps
            return sess.run(reference), [sess.run(r.var_list) for r in replicas], history


def replica_data(n):
    return [make_data(seed=10 + a) for a in range(n)]


@pytest.mark.parametrize("n", [2, 3])
def test_matches_numpy_reference(n):
    params, data, steps = init_params("two_layer"), replica_data(n), 4
    streams = [[(xs[i].astype(np.float64), ys[i]) for i in range(steps * HYPER["L"])] for xs, ys in data]
    ref_expected, xs_expected = reference_parle(params, streams, steps, rho=RHO, rho_scoping=RHO_SCOPING, **HYPER)
    ref_got, xs_got, history = run_parle(params, data, steps)
    for e, g in zip(ref_expected, ref_got):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    for xe, xg in zip(xs_expected, xs_got):
        for e, g in zip(xe, xg):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    # the replicas differ (own data), the coupling is active, and rho grows by its scoping rule
    assert max(np.abs(a - b).max() for a, b in zip(xs_got[0], xs_got[1])) > 1e-3
    assert history[-1]["replica_distance"] > 0
    np.testing.assert_allclose([h["rho"] for h in history], [RHO * (1 + RHO_SCOPING) ** k for k in range(steps)],
                               rtol=1e-6)


@pytest.mark.bitexact
def test_one_replica_is_entropy_sgd_exactly():
    params, data, steps = init_params("two_layer"), replica_data(1), 4
    ref_got, (x_got,), history = run_parle(params, data, steps)
    with tf.Graph().as_default():
        vs, loss_fn, _ = build_tf_model("two_layer", params, *data[0])
        step = EntropySGD(loss_fn, epsilon=0.0, **HYPER).minimize(loss_fn())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(steps):
                sess.run(step)
            expected = sess.run(vs)
    for e, x, r in zip(expected, x_got, ref_got):
        np.testing.assert_array_equal(x, e)
        np.testing.assert_array_equal(r, e)
    assert all(h["replica_distance"] == 0 for h in history)


def test_delta_update_keeps_the_reference_the_mean_of_the_replicas():
    """All replicas in one graph but x̄ updated by their deltas, as separate processes would: the same
    x̄ as the exact mean, to float32 rounding."""
    params, data, steps = init_params("two_layer"), replica_data(3), 3
    ref_mean, xs_mean, _ = run_parle(params, data, steps, update="mean")
    ref_delta, xs_delta, _ = run_parle(params, data, steps, update="delta", num_replicas=3)
    for a, b in zip(ref_mean, ref_delta):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    for j, r in enumerate(ref_delta):
        np.testing.assert_allclose(r, np.mean([x[j] for x in xs_delta], axis=0), rtol=1e-5, atol=1e-6)


def test_bad_arguments():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match="rho"):
            ParleReplica(lambda: 0.0, 0.1, reference={}, rho=-1.0)
        with pytest.raises(ValueError, match="update"):
            parle_step([], [], update="sum")

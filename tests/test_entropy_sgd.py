"""EntropySGD against an independent NumPy transcription of the algorithm (the pseudocode,
in esgd_reference.py: float64, explicit loops, hand-derived gradients of the two test models), on the
fused and the per-variable inner step; plus the optimizer's contract (batches, update ops, stats, noise
and its keys, checkpoints, errors)."""
import numpy as np
import pytest

from training.trace import traced_op_types
from esgd_reference import (N_BATCHES, build_tf_model, init_params, linear_grads, make_data,
                            reference_entropy_sgd, two_layer_grads)
from optimizers import EntropySGD
from tfcompat import tf


def run_tf(model, params, xs, ys, steps, tensor_hyper=False, **hyper):
    with tf.Graph().as_default():
        vs, loss_fn, _ = build_tf_model(model, params, xs, ys)
        if tensor_hyper:  # schedules arrive as tensors
            for key in ("learning_rate", "gamma", "langevin_lr", "epsilon"):
                hyper[key] = tf.constant(hyper[key], dtype=tf.float32) * tf.constant(1.0)
        opt = EntropySGD(loss_fn, **hyper)
        train = opt.minimize(loss_fn())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(steps):
                sess.run(train)
            return sess.run(vs)


CASES = [
    # (model, L, momentum, nesterov, weight_decay, scoping)
    ("linear", 0, 0.9, True, 0.0, 0.0),
    ("linear", 0, 0.0, False, 1e-2, 0.0),
    ("linear", 1, 0.9, True, 0.0, 0.0),
    ("linear", 1, 0.9, False, 1e-2, 0.1),
    ("linear", 5, 0.0, False, 0.0, 0.0),
    ("linear", 5, 0.9, True, 1e-2, 0.1),
    ("linear", 5, 0.9, False, 0.0, 0.1),
    ("two_layer", 5, 0.9, True, 1e-2, 0.1),
    ("two_layer", 1, 0.0, True, 0.0, 0.0),
]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "per-variable"])
@pytest.mark.parametrize("model,L,momentum,nesterov,weight_decay,scoping", CASES)
def test_matches_numpy_reference(model, L, momentum, nesterov, weight_decay, scoping, fused):
    xs, ys = make_data()
    params = init_params(model)
    hyper = dict(learning_rate=0.5, L=L, gamma=0.3, scoping=scoping, langevin_lr=0.2, mu_decay=0.75,
                 momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    steps = 4
    grad_fn = linear_grads if model == "linear" else two_layer_grads
    batches = [(xs[i % N_BATCHES].astype(np.float64), ys[i % N_BATCHES]) for i in range(steps * max(L, 1))]
    expected = reference_entropy_sgd(params, batches, grad_fn, steps, **hyper)
    got = run_tf(model, params, xs, ys, steps, epsilon=0.0, fused=fused, **hyper)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    # the run moved the weights: the comparison is not between two copies of the start
    assert max(np.abs(e - p).max() for e, p in zip(expected, params)) > 1e-2


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "per-variable"])
def test_outer_momentum_of_its_own_matches_numpy_reference(fused):
    """The authors' Lua outer step: no momentum there (outer_momentum=0), Nesterov 0.9 in the Langevin loop."""
    xs, ys = make_data()
    params = init_params("two_layer")
    hyper = dict(learning_rate=0.5, L=3, gamma=0.3, scoping=0.1, langevin_lr=0.2, mu_decay=0.75,
                 momentum=0.9, nesterov=True, weight_decay=1e-2, outer_momentum=0.0)
    batches = [(xs[i % N_BATCHES].astype(np.float64), ys[i % N_BATCHES]) for i in range(4 * 3)]
    expected = reference_entropy_sgd(params, batches, two_layer_grads, 4, **hyper)
    got = run_tf("two_layer", params, xs, ys, 4, epsilon=0.0, fused=fused, **hyper)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    with_outer = reference_entropy_sgd(params, batches, two_layer_grads, 4, **dict(hyper, outer_momentum=0.9))
    assert max(np.abs(e - w).max() for e, w in zip(expected, with_outer)) > 1e-2  # the setting matters


def test_tensor_hyperparameters_match_numpy_reference():
    xs, ys = make_data()
    params = init_params("two_layer")
    hyper = dict(learning_rate=0.3, L=3, gamma=0.1, scoping=0.05, langevin_lr=0.1, mu_decay=0.5,
                 momentum=0.9, nesterov=True, weight_decay=1e-3)
    batches = [(xs[i].astype(np.float64), ys[i]) for i in range(9)]
    expected = reference_entropy_sgd(params, batches, two_layer_grads, 3, **hyper)
    got = run_tf("two_layer", params, xs, ys, 3, tensor_hyper=True, epsilon=0.0, **hyper)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_L0_is_tensorflows_nesterov_momentum():
    xs, ys = make_data()
    params = init_params("two_layer")
    got = run_tf("two_layer", params, xs, ys, 6, learning_rate=0.2, L=0, momentum=0.9, nesterov=True)
    with tf.Graph().as_default():
        vs, loss_fn, _ = build_tf_model("two_layer", params, xs, ys)
        train = tf.train.MomentumOptimizer(0.2, 0.9, use_nesterov=True).minimize(loss_fn())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(6):
                sess.run(train)
            expected = sess.run(vs)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("L", [0, 1, 5])
def test_one_outer_step_consumes_exactly_L_batches(L):
    with tf.Graph().as_default():
        it = tf.data.make_one_shot_iterator(tf.data.Dataset.range(1000))
        w = tf.get_variable("w", initializer=1.0)

        def loss_fn():
            return tf.square(w) * tf.cast(it.get_next(), tf.float32)

        gs = tf.train.get_or_create_global_step()
        train = EntropySGD(loss_fn, 0.01, L=L, epsilon=0.0).minimize(loss_fn(), global_step=gs)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(3):
                sess.run(train)
            assert sess.run(it.get_next()) == 3 * max(L, 1)
            assert sess.run(gs) == 3


def test_update_ops_made_by_loss_fn_run_in_every_inner_step():
    with tf.Graph().as_default():
        w = tf.get_variable("w", initializer=1.0)
        calls = tf.get_variable("calls", initializer=0, trainable=False)

        def loss_fn():
            tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, calls.assign_add(1))
            return tf.square(w)

        loss = loss_fn()
        outer_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        with tf.control_dependencies(outer_updates):
            train = EntropySGD(loss_fn, 0.01, L=5).minimize(loss)
        # the loop's own update ops are not left in the collection, where nothing could run them
        assert tf.get_collection(tf.GraphKeys.UPDATE_OPS) == outer_updates
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(train)
            sess.run(train)
            assert sess.run(calls) == 2 * 5


def test_scoping_counter_and_stats():
    xs, ys = make_data()
    params = init_params("linear")
    with tf.Graph().as_default():
        vs, loss_fn, _ = build_tf_model("linear", params, xs, ys)
        opt = EntropySGD(loss_fn, 0.5, L=4, gamma=0.2, scoping=0.5, langevin_lr=0.1, epsilon=0.0)
        train = opt.minimize(loss_fn())
        assert set(opt.stats) == {"gamma", "inner_loss", "x_mu_norm", "x_xprime_norm"}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for k in range(3):
                before = sess.run(vs)
                _, stats = sess.run([train, opt.stats])
                np.testing.assert_allclose(stats["gamma"], 0.2 * 1.5 ** k, rtol=1e-6)
                assert sess.run(opt.outer_step) == k + 1
                # first step: m = x - mu, and Nesterov moves x by lr * (1 + momentum) * (x - mu)
                moved = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(sess.run(vs), before)))
                if k == 0:
                    np.testing.assert_allclose(moved, 0.5 * 1.9 * stats["x_mu_norm"], rtol=1e-5)
                assert stats["x_xprime_norm"] > stats["x_mu_norm"] > 0
                assert np.isfinite(stats["inner_loss"])


def test_inner_loss_is_the_mean_of_the_L_inner_losses():
    with tf.Graph().as_default():
        it = tf.data.make_one_shot_iterator(tf.data.Dataset.range(1, 1000))
        w = tf.get_variable("w", initializer=0.0)

        def loss_fn():  # the loss is the batch index, plus a term that depends on w
            return tf.cast(it.get_next(), tf.float32) + 0.0 * w

        opt = EntropySGD(loss_fn, 0.1, L=4)
        train = opt.minimize(loss_fn())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            _, first = sess.run([train, opt.stats["inner_loss"]])
            _, second = sess.run([train, opt.stats["inner_loss"]])
    assert first == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert second == pytest.approx((5 + 6 + 7 + 8) / 4)


def test_injected_noise_has_the_published_scale():
    """Zero gradient, no coupling, no momentum, mu = x' and lr = 1: the step moves x by the noise alone,
    whose per-coordinate standard deviation must be langevin_lr * epsilon / sqrt(0.5 * langevin_lr)."""
    n, eps, eta = 40000, 0.1, 0.5
    with tf.Graph().as_default():
        w = tf.get_variable("w", initializer=tf.ones([n]))

        def loss_fn():
            return 0.0 * tf.reduce_sum(w)

        train = EntropySGD(loss_fn, 1.0, L=1, gamma=0.0, scoping=0.0, langevin_lr=eta, epsilon=eps,
                           mu_decay=0.0, momentum=0.0).minimize(loss_fn())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(train)
            step = sess.run(w) - 1.0
    expected_std = eta * eps / np.sqrt(0.5 * eta)
    assert abs(step.mean()) < 5 * expected_std / np.sqrt(n)
    assert step.std() == pytest.approx(expected_std, rel=0.03)
    # Gaussian: about 68.3 % within one standard deviation
    assert np.mean(np.abs(step) < expected_std) == pytest.approx(0.6827, abs=0.01)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "per-variable"])
def test_every_inner_step_outer_step_and_variable_draws_its_own_noise(fused):
    """The scale test's zero gradient with L = 2, two outer steps and two equal variables: each move is
    the noise of two inner steps (standard deviation sqrt(2) times one step's: they are independent), and
    the moves of the two variables in the two outer steps are uncorrelated."""
    n, eps, eta = 20000, 0.1, 0.5
    with tf.Graph().as_default():
        ws = [tf.get_variable("w%d" % j, initializer=tf.ones([n])) for j in range(2)]

        def loss_fn():
            return 0.0 * tf.add_n([tf.reduce_sum(w) for w in ws])

        train = EntropySGD(loss_fn, 1.0, L=2, gamma=0.0, scoping=0.0, langevin_lr=eta, epsilon=eps,
                           mu_decay=0.0, momentum=0.0, fused=fused).minimize(loss_fn())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            moves = []
            for _ in range(2):
                before = sess.run(ws)
                sess.run(train)
                moves += [after - b for after, b in zip(sess.run(ws), before)]
    for move in moves:
        assert move.std() == pytest.approx(np.sqrt(2) * eta * eps / np.sqrt(0.5 * eta), rel=0.03)
    correlations = np.corrcoef(moves)[np.triu_indices(len(moves), 1)]
    assert np.all(np.abs(correlations) < 0.04), correlations  # about 0.007 each if independent


@pytest.mark.bitexact
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "per-variable"])
def test_the_noise_is_a_function_of_the_seed(fused):
    """Two graphs and sessions with one seed end with the same weights, bit for bit; another seed elsewhere."""
    xs, ys = make_data()
    params = init_params("two_layer")
    hyper = dict(learning_rate=0.3, L=3, gamma=0.1, scoping=0.2, langevin_lr=0.1, epsilon=0.05, fused=fused)
    first, again, other = [run_tf("two_layer", params, xs, ys, 3, seed=seed, **hyper) for seed in (5, 5, 6)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, c) for a, c in zip(first, other))


@pytest.mark.bitexact
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "per-variable"])
def test_save_restore_continues_exactly(tmp_path, fused):
    """With noise: a session restored at outer step k draws what the uninterrupted one draws after k."""
    xs, ys = make_data()
    params = init_params("two_layer")
    L, k, extra = 3, 2, 3
    hyper = dict(learning_rate=0.3, L=L, gamma=0.1, scoping=0.2, langevin_lr=0.1, epsilon=0.05,
                 momentum=0.9, weight_decay=1e-3, fused=fused)

    def session_run(skip, steps, restore_from=None, save_to=None):
        with tf.Graph().as_default():
            vs, loss_fn, _ = build_tf_model("two_layer", params, xs, ys, skip_batches=skip)
            opt = EntropySGD(loss_fn, **hyper)
            train = opt.minimize(loss_fn())
            saver = tf.train.Saver()
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                if restore_from:
                    saver.restore(sess, restore_from)
                for _ in range(steps):
                    sess.run(train)
                if save_to:
                    saver.save(sess, save_to)
                slots = [opt.get_slot(v, "momentum") for v in vs]
                return sess.run(vs + slots + [opt.outer_step])

    uninterrupted = session_run(0, k + extra)
    session_run(0, k, save_to=str(tmp_path / "ckpt"))
    resumed = session_run(k * L, extra, restore_from=str(tmp_path / "ckpt"))
    assert resumed[-1] == k + extra
    for a, b in zip(uninterrupted, resumed):
        np.testing.assert_array_equal(b, a)


def test_slots_are_the_documented_two_buffers():
    """x', m' and mu are while-loop state: only the anchor and the outer momentum are kept per variable."""
    with tf.Graph().as_default():
        w = tf.get_variable("w", initializer=tf.ones([3]))
        opt = EntropySGD(lambda: tf.reduce_sum(tf.square(w)), 0.1, L=2)
        opt.minimize(tf.reduce_sum(tf.square(w)))
        assert sorted(opt.get_slot_names()) == ["anchor", "momentum"]
        assert sorted(opt.get_slot(w, n).op.name for n in opt.get_slot_names()) == [
            "w/EntropySGD_anchor", "w/EntropySGD_momentum"]
        assert "outer_step" in " ".join(v.name for v in tf.global_variables())


@pytest.mark.parametrize("kwargs,match", [
    (dict(L=-1), "L must be"),
    (dict(L=2.5), "L must be"),
    (dict(L=True), "L must be"),
    (dict(learning_rate=-0.1), "learning_rate"),
    (dict(learning_rate=float("nan")), "learning_rate"),
    (dict(gamma=float("inf")), "gamma"),
    (dict(langevin_lr=-1.0), "langevin_lr"),
    (dict(epsilon=-1e-4), "epsilon"),
    (dict(scoping=-1.0), "scoping"),
    (dict(momentum=-0.9), "momentum"),
    (dict(weight_decay=-1.0), "weight_decay"),
    (dict(mu_decay=1.0), "mu_decay"),
    (dict(mu_decay=-0.1), "mu_decay"),
    (dict(seed=1.5), "seed"),
    (dict(seed=True), "seed"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, match):
    args = dict(loss_fn=lambda: None, learning_rate=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        EntropySGD(**args)


def test_loss_fn_must_be_callable():
    with pytest.raises(TypeError, match="loss_fn"):
        EntropySGD(None, 0.1, L=5)


def test_L1_needs_no_loss_fn_and_builds_no_loop():
    with tf.Graph().as_default():
        w = tf.get_variable("w", initializer=2.0)
        opt = EntropySGD(None, 0.5, L=1, gamma=0.0, epsilon=0.0, mu_decay=0.0, momentum=0.0)
        train = opt.minimize(tf.square(w))
        assert not any(op.type == "Enter" for op in tf.get_default_graph().get_operations())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(train)
            # x' = 2 - 0.1 * 4 = 1.6 = mu; x <- x - 0.5 * (x - mu) = 1.8
            assert sess.run(w) == pytest.approx(1.8)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "per-variable"])
def test_fused_arithmetic_runs_as_one_xla_cluster_per_inner_step(fused):
    """The fused step's arithmetic is compiled by XLA: one cluster run per inner step (L of them per outer
    step, loop included); the per-variable step has none. The noise is drawn outside, as a plain op: once
    per inner step, or once per variable and inner step."""
    L = 3
    xs, ys = make_data()
    with tf.Graph().as_default():
        vs, loss_fn, _ = build_tf_model("two_layer", init_params("two_layer"), xs, ys)
        train = EntropySGD(loss_fn, 0.1, L=L, fused=fused).minimize(loss_fn())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            ops = traced_op_types(sess, train)
    assert ops.count("_XlaRun") == (L if fused else 0)
    assert ops.count("StatelessRandomNormalV2") == L * (1 if fused else len(vs))


def test_sparse_gradient_is_not_implemented():
    with tf.Graph().as_default():
        table = tf.get_variable("embedding", initializer=tf.ones([10, 2]))

        def loss_fn():
            return tf.reduce_sum(tf.nn.embedding_lookup(table, [1, 3]))

        with pytest.raises(NotImplementedError, match="embedding"):
            EntropySGD(loss_fn, 0.1, L=2).minimize(loss_fn())

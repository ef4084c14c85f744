"""EntropySGD's loss scaling (for float16 models) and its data-parallel towers.

Loss scaling: a finite power-of-two scale leaves every step unchanged; an overflowing gradient, in the
first inner step or one inside the loop, skips the whole outer step (weights and momentum as before),
counts it and halves the scale, by the rule of TF's DynamicLossScale. Towers: a loss_fn returning one
loss per device-sized slice of the batch gives the weights of the whole batch on one device.
"""
import numpy as np
import pytest

from esgd_reference import BATCH, build_tf_model, init_params, make_data, reference_entropy_sgd, two_layer_grads
from optimizers import EntropySGD
from optimizers.entropy_sgd import MOMENTUM
from tfcompat import tf

HYPER = dict(learning_rate=0.3, L=3, gamma=0.1, scoping=0.05, langevin_lr=0.1, epsilon=0.0, mu_decay=0.5,
             momentum=0.9, nesterov=True, weight_decay=1e-3)
INITIAL_SCALE = 2.0 ** 15


def train(xs, ys, steps, loss_scale=None, towers=1, fused=True, model="two_layer"):
    """Run `steps` outer steps of a test model; return per step (weights, momenta, stats)."""
    params = init_params(model)
    with tf.Graph().as_default():
        vs, loss_fn, _ = build_tf_model(model, params, xs, ys, towers=towers)
        scale = loss_scale() if loss_scale else None
        opt = EntropySGD(loss_fn, loss_scale=scale, fused=fused, **HYPER)
        step = opt.minimize(loss_fn())
        momenta = [opt.get_slot(v, MOMENTUM) for v in vs]
        history = []
        with tf.Session(config=tf.ConfigProto(device_count={"CPU": max(towers, 1)})) as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(steps):
                _, stats = sess.run([step, opt.stats])
                history.append((sess.run(vs), sess.run(momenta), stats))
    return history


def test_a_finite_loss_scale_changes_nothing():
    xs, ys = make_data()
    plain = train(xs, ys, 3)
    scaled = train(xs, ys, 3, loss_scale=lambda: tf.mixed_precision.DynamicLossScale(INITIAL_SCALE))
    for (w_plain, _, _), (w_scaled, _, stats) in zip(plain, scaled):
        for a, b in zip(w_plain, w_scaled):
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
        assert stats["skipped_steps"] == 0 and stats["loss_scale"] == INITIAL_SCALE


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "per-variable"])
@pytest.mark.parametrize("inner_step", [0, 2], ids=["first-inner-step", "inside-the-loop"])
def test_an_overflowing_gradient_skips_the_outer_step_and_halves_the_scale(inner_step, fused):
    xs, ys = make_data()
    # A huge input in one batch of outer step 1: the linear model's loss stays finite, but scaled by
    # 2^15 the weights' gradient (input x error) exceeds float32's range; unscaled it would not.
    bad_step = 1
    xs, ys, bad = xs.copy(), ys.copy(), bad_step * HYPER["L"] + inner_step
    xs[bad, 0, 0] = 1e36
    ys[bad, 0] = 1  # not the class the huge input picks (the first), so its error is not zero
    history = train(xs, ys, 3, fused=fused, model="linear", loss_scale=lambda: tf.mixed_precision.DynamicLossScale(
        INITIAL_SCALE, increment_period=1000))
    (w_before, m_before, _), (w_after, m_after, stats) = history[bad_step - 1], history[bad_step]
    for a, b in zip(w_before + m_before, w_after + m_after):
        np.testing.assert_array_equal(b, a)
    assert stats["skipped_steps"] == 1 and stats["loss_scale"] == INITIAL_SCALE / 2
    assert np.isfinite(stats["inner_loss"])
    # the next outer step is taken again, with the lowered scale
    w_next, _, stats_next = history[bad_step + 1]
    assert stats_next["skipped_steps"] == 1
    assert all(np.isfinite(w).all() for w in w_next)
    assert max(np.abs(a - b).max() for a, b in zip(w_after, w_next)) > 1e-4


def test_the_scale_grows_after_its_increment_period_of_finite_steps():
    xs, ys = make_data()
    history = train(xs, ys, 4, loss_scale=lambda: tf.mixed_precision.DynamicLossScale(
        4.0, increment_period=2))
    assert [h[2]["loss_scale"] for h in history][-1] == 16.0


def test_two_towers_give_the_weights_of_the_whole_batch():
    """Mean over towers of each half batch's mean loss is the whole batch's mean: the gradients, and so
    the weights, equal those of one device, which also match the NumPy reference."""
    xs, ys = make_data()
    assert BATCH % 2 == 0
    one = train(xs, ys, 3, towers=1)
    two = train(xs, ys, 3, towers=2)
    batches = [(xs[i].astype(np.float64), ys[i]) for i in range(3 * HYPER["L"])]
    expected = reference_entropy_sgd(init_params("two_layer"), batches, two_layer_grads, 3,
                                     **{k: v for k, v in HYPER.items() if k != "epsilon"})
    for a, b, e in zip(one[-1][0], two[-1][0], expected):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b, e, rtol=1e-4, atol=1e-5)
    assert two[-1][2]["inner_loss"] == pytest.approx(one[-1][2]["inner_loss"], rel=1e-5)


def test_tower_losses_are_built_on_their_devices():
    xs, ys = make_data()
    with tf.Graph().as_default():
        _, loss_fn, _ = build_tf_model("two_layer", init_params("two_layer"), xs, ys, towers=2)
        EntropySGD(loss_fn, **HYPER).minimize(loss_fn())
        devices = {op.device for op in tf.get_default_graph().get_operations() if op.type == "MatMul"}
    assert {"/device:CPU:0", "/device:CPU:1"} <= devices

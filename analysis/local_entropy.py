"""The local-entropy estimate Entropy-SGD itself makes, measured at fixed weights x.

Entropy-SGD's gradient of the local entropy is gamma (x - <x'>), with <x'> the mean of the Gibbs measure
exp(-f(x') - gamma/2 ||x - x'||^2) estimated by L Langevin steps from x (the running average mu). A
small ||x - mu|| at a given gamma means the Gibbs measure stays centred on x: a wide, flat valley. The
mean loss over the Langevin iterates estimates the Gibbs-averaged loss <f(x')> near x.

How: one ``EntropySGD`` outer step with ``learning_rate = 0`` and ``scoping = 0``, built on the caller's
``loss_fn``. Its inner loop is exactly the optimizer's (the same class, not a copy), and its ``stats``
are the numbers wanted: ``x_mu_norm`` = ||x - mu||, ``inner_loss`` = mean of f at x'_0 = x, ..., x'_{L-1},
``x_xprime_norm`` = ||x - x'_L||. With learning rate 0 the outer update writes back the anchor x it saved
before the loop; ``measure`` also re-assigns the anchor explicitly afterwards, so weights are restored
even if the Langevin iterates overflow (0 * inf is NaN). Scoping 0 keeps gamma fixed across calls, and the
estimator's own slot variables are re-initialised before each measurement, so it has no memory.
"""
import collections

from optimizers import EntropySGD
from optimizers.entropy_sgd import ANCHOR
from tfcompat import tf

STATS = ("x_mu_norm", "inner_loss", "x_xprime_norm", "gamma")

LocalEntropyProbe = collections.namedtuple("LocalEntropyProbe", "step stats reset restore variables")
LocalEntropyProbe.__doc__ = (
    "Graph pieces of the estimate: ``step`` (the Langevin loop), ``stats`` {name: scalar tensor}, ``reset`` "
    "(initialises the estimator's own variables), ``restore`` (writes x back) and ``variables`` (the "
    "estimator's own variables: keep them out of a Saver that restores a checkpoint).")


def build_local_entropy(loss_fn, var_list=None, L=20, gamma=0.03, langevin_lr=0.1, epsilon=1e-4,
                        mu_decay=0.75, momentum=0.9, nesterov=True, weight_decay=0.0, seed=0, name="LocalEntropy"):
    """Return a LocalEntropyProbe measuring the local entropy at the current value of ``var_list``.

    ``loss_fn()`` builds the scalar loss on the data to measure on; it is called once here (the first
    Langevin step) and once inside the loop (steps 2..L), as the optimizer does. For a measurement of
    the weights alone give it fixed data and the model in inference mode: with batch norm in training
    mode the loop would also move the moving statistics. The Langevin arguments are EntropySGD's (pass
    the values the model was trained with to see the optimizer's own estimate). ``seed`` keys the Langevin
    noise: every measurement draws the noise of the optimizer's first outer step with that seed, so the
    estimate is a function of the weights, the data and ``seed`` (``epsilon = 0``: of the first two).
    ``var_list`` defaults to the trainable variables. ``L`` must be >= 1.
    """
    if L < 1:
        raise ValueError("the local-entropy estimate needs L >= 1 Langevin steps, got %r" % (L,))
    opt = EntropySGD(loss_fn, 0.0, L=L, gamma=gamma, scoping=0.0, langevin_lr=langevin_lr, epsilon=epsilon,
                     mu_decay=mu_decay, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                     seed=seed, name=name)
    loss = loss_fn()
    var_list = tf.trainable_variables() if var_list is None else list(var_list)
    step = opt.minimize(loss, var_list=var_list)
    # The step moves the variables the loss depends on: those that got an anchor slot (x saved).
    anchors = [(v, opt.get_slot(v, ANCHOR)) for v in var_list if opt.get_slot(v, ANCHOR) is not None]
    restore = tf.group(*[v.assign(a.read_value()) for v, a in anchors], name=name + "_restore")
    variables = opt.variables()
    return LocalEntropyProbe(step=step, stats={k: opt.stats[k] for k in STATS},
                             reset=tf.variables_initializer(variables), restore=restore, variables=variables)


def measure(sess, probe, feed_dict=None):
    """Run the L Langevin steps from the current weights and return {stat: float} (see STATS).

    The weights are unchanged afterwards. ``feed_dict`` feeds whatever ``loss_fn`` reads.
    """
    sess.run(probe.reset)
    _, stats = sess.run([probe.step, probe.stats], feed_dict)
    sess.run(probe.restore)
    return {k: float(v) for k, v in stats.items()}

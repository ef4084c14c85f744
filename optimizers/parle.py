"""Parle (Chaudhari, Baldassi, Zecchina, Soatto, Talwalkar, Oberman 2017, arXiv 1707.00424): n replicas
of Entropy-SGD, each on its own data, elastically coupled to a reference x̄ that is their mean.

One outer step, for every replica a at once (k: outer steps so far, as Entropy-SGD's scoping counter):

    rho = rho_0 * (1 + rho_scoping)^k                  grows with k, as gamma does, so the replicas
                                                       end in one valley
    replica a: Entropy-SGD's L Langevin steps from x^a, giving mu^a, then its outer update with
               d = x^a - mu^a + rho * (x^a - x̄)        (x̄ as it was before this step)
    x̄ <- mean over a of x^a

This is the paper's update (its equation for the replicas' outer step plus the mean for x̄), built on
our EntropySGD so that with one replica x̄ = x after every step, the elastic term is exactly zero and
Parle is Entropy-SGD. rho is used as given (the authors' code multiplies it by L * n first).

The authors' Parle code (PyTorch, MPI: ucla-vision/parle, parle_mpi.py at fe665ec) departs from this in
the seven ways below (their Parle code draws no Langevin noise). Run side by side with ours on a small
problem, noise off, it agreed to float32 rounding once all seven were switched to our choice (a one-off
check: their code needs PyTorch and MPI, so it is not part of the test suite). We follow the paper where
it says, and the authors' Entropy-SGD code where it is silent:

1. Where the outer step starts. Theirs applies it to the last Langevin iterate x'_L, x^a <- x'_L - lr * d.
   Ours moves the anchor, x^a <- x^a - lr * d, as the paper's outer update does.
2. mu. Theirs starts mu at the initial weights once and never resets it: an average over every Langevin
   step of the run. Ours sets mu <- x^a at the start of each outer step, as their Entropy-SGD code does.
3. The inner momentum. Theirs keeps one buffer for the whole run; ours starts it at 0 every outer step, as
   their Entropy-SGD code does.
4. What the replicas are coupled to. Theirs runs an extra exchange before the outer step and couples each
   replica to the mean of the replicas' mu, rho * (x^a - mean of mu^b); its x̄, the mean after the step, is
   evaluated but never coupled to. Ours couples to x̄ as it was before the step, as the paper's update
   does, with one exchange per outer step.
5. Scoping. Theirs multiplies gamma_0 and rho_0 by (1 + 0.5 / batches per epoch)^(t // L), with t
   incremented once per parameter tensor in each Langevin step: the exponent grows by the number of tensors
   per outer step and changes between the Langevin steps of one outer step; then it caps gamma <= 1 and
   rho <= 10. Ours uses (1 + scoping)^k and (1 + rho_scoping)^k, k the outer steps so far (fixed within an
   outer step), without caps: the authors' Entropy-SGD code scopes once per outer step (their Lua version;
   the Python one never advances its counter) and caps nothing.
6. The momentum's form. Theirs uses d = g + m, m <- momentum * m + g, in both loops: d = 2g at momentum 0.
   Ours is their Entropy-SGD code's Nesterov form d = g + momentum * m (d = g at momentum 0), or d = m with
   ``nesterov=False``.
7. Where gamma's pull enters. Theirs adds gamma * (x' - x) to the gradient before the momentum buffer, which
   then accumulates it. Ours adds it after the momentum, outside the buffer, as their Entropy-SGD code does.

Their script also takes one learning rate for both loops and divides it by 10 after every epoch; here
those are settings of the run (the Langevin step ``langevin_lr`` and the outer rate's schedule, as for
Entropy-SGD), not of the update.

x̄ is the model that is evaluated and saved: it lives in the model's own variables, and the replicas
in copies of them. Moving statistics of batch norm are averaged like the weights.

Two ways to update x̄: ``"mean"`` (one process holds every replica: x̄ <- mean, exact) and ``"delta"``
(one process per replica on TF's distributed runtime: each adds (x^a_new - x^a_old) / n to x̄, which keeps
x̄ the mean of the replicas without waiting for the others: asynchronous, as the paper allows).
"""
import collections

from optimizers.entropy_sgd import EntropySGD, _check_rate
from tfcompat import tf

Replica = collections.namedtuple("Replica", "optimizer loss var_list")
Replica.__doc__ = ("One replica: its ``ParleReplica`` optimizer, the loss of its first inner step, and its "
                   "variables, in the order of the reference variables they are coupled to.")


class ParleReplica(EntropySGD):
    """Entropy-SGD whose outer direction has Parle's elastic term ``rho * (x - x̄)``.

    ``reference``: {replica variable: its reference variable x̄}; every variable this optimizer updates
    must have one. ``rho``, ``rho_scoping``: the coupling and its growth per outer step. The other
    arguments are EntropySGD's. ``stats`` gains ``rho``.
    """

    def __init__(self, loss_fn, learning_rate, reference, rho=0.1, rho_scoping=1e-3, name="Parle", **kwargs):
        _check_rate("rho", rho)
        _check_rate("rho_scoping", rho_scoping)
        super(ParleReplica, self).__init__(loss_fn, learning_rate, name=name, **kwargs)
        self._reference = dict(reference)
        self._hyper.update(rho=rho, rho_scoping=rho_scoping)

    def _outer_directions(self, var_list, anchors, mus, gamma):
        k = self.outer_step.read_value()
        rho = tf.multiply(self._t["rho"], tf.pow(1.0 + self._t["rho_scoping"], k), name="rho")
        self.stats["rho"] = rho
        directions = super(ParleReplica, self)._outer_directions(var_list, anchors, mus, gamma)
        return [d + rho * (x - self._reference[v].read_value()) for v, d, x in zip(var_list, directions, anchors)]


def parle_step(replicas, reference_vars, num_replicas=None, update="mean", global_step=None, statistics=True):
    """Return (op, stats) of one Parle outer step of ``replicas`` (a list of Replica).

    ``reference_vars``: the x̄ variables; ``replica.var_list[j]`` is replica's copy of
    ``reference_vars[j]`` (trainable variables and batch-norm moving statistics alike). ``update``:
    ``"mean"`` (all ``replicas`` are here; x̄ <- their mean) or ``"delta"`` (this process holds some of
    ``num_replicas``; x̄ += (x_new - x_old) / num_replicas for each trainable variable). With "delta" the
    non-trainable reference variables (batch-norm statistics) are set to the mean of the replicas here
    when ``statistics`` is true and left alone otherwise: give one process that role (the chief), so that
    no other process writes them while the chief re-estimates them at x̄ for an evaluation.
    ``stats``: the first replica's optimizer stats, plus ``replica_distance``: the mean over the replicas
    here of ||x^a - x̄|| after the step.
    """
    if update not in ("mean", "delta"):
        raise ValueError("update must be 'mean' or 'delta', got %r" % (update,))
    n = len(replicas) if num_replicas is None else num_replicas
    # Values before the step (for "delta"): read first, so the step's writes come after.
    olds = [[v.read_value() for v in r.var_list] for r in replicas] if update == "delta" else None
    steps = []
    with tf.control_dependencies(sum(olds or [], [])):
        for r in replicas:
            # On the replica's own device: its L inner steps then touch no other device.
            with tf.device(r.var_list[0].device):
                steps.append(r.optimizer.minimize(r.loss, var_list=[v for v in r.var_list if v.trainable]))
    updates = []
    with tf.control_dependencies(steps):
        for j, ref in enumerate(reference_vars):
            news = [r.var_list[j].read_value() for r in replicas]
            if update == "mean" or (not ref.trainable and statistics):
                updates.append(ref.assign(tf.add_n(news) / float(len(news))).op)
            elif not ref.trainable:
                continue
            else:
                delta = tf.add_n([new - old[j] for new, old in zip(news, olds)]) / float(n)
                updates.append(ref.assign_add(delta).op)
    with tf.control_dependencies(updates):
        distances = [tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(v.read_value() - ref.read_value()))
                                       for v, ref in zip(r.var_list, reference_vars) if v.trainable]))
                     for r in replicas]
        stats = dict(replicas[0].optimizer.stats, replica_distance=tf.add_n(distances) / float(len(distances)))
        finish = [tf.assign_add(global_step, 1).op] if global_step is not None else []
    return tf.group(*(finish + [s.op for s in stats.values()]), name="parle_step"), stats

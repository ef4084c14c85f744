"""Entropy-SGD (Chaudhari et al., ICLR 2017) as a TF 1.x ``tf.train.Optimizer``.

One outer step, with the names of the paper and of our arguments (x: the weights):

    gamma = gamma_0 * (1 + scoping)^k                 k: outer steps taken so far ("scoping")
    x' <- x ;  mu <- x ;  m' <- 0
    for i = 1 .. L:                                    batch 1: the loss given to minimize()
        g  <- grad f(x'; batch_i) + weight_decay * x'  batches 2..L: loss_fn(), inside a tf.while_loop
        m' <- momentum * m' + g ;  g <- g + momentum * m'  (Nesterov)  or  g <- m'
        x' <- x' - langevin_lr * (g - gamma * (x - x')) - epsilon * sqrt(2 * langevin_lr) * N(0, I)
        mu <- mu_decay * mu + (1 - mu_decay) * x'
    d <- x - mu + weight_decay * x                     (L = 0: d <- grad f(x; batch 1) + weight_decay * x)
    m <- outer_momentum * m + d ;  d <- d + outer_momentum * m   (Nesterov)  or  d <- m
    x <- x - learning_rate * d

This is the authors' PyTorch code (momentum in both loops, gamma folded into the learning rate of the
outer step) with the scoping counter incremented as in their Lua code. ``outer_momentum`` defaults to
``momentum``, as there; their Lua code, which made the paper's figures, applies none to the outer step
(``outer_momentum=0``: x <- x - learning_rate * (x - mu)). The noise term is the authors'
``langevin_lr * epsilon / sqrt(0.5 * langevin_lr) * N``, written as ``epsilon * sqrt(2 * langevin_lr) * N``
so that langevin_lr = 0 is not a division by zero.

The noise N of inner step i of outer step k is a stateless draw keyed by (``seed``, k, i) (and, per
variable, the variable's index), not a stateful random op: k is the scoping counter, a variable saved in
checkpoints, so a run restored at step k draws the noise an uninterrupted one would.

During the loop the model's variables hold x' (so ``loss_fn`` needs no knowledge of the optimizer),
written at the top of each inner step 2..L; the anchor x is kept in a slot and written back by the outer
update, so x' never leaks out of a step.
x', m' and mu are carried as ``tf.while_loop`` state: they start afresh every outer step, so only the
anchor and the outer momentum are slot variables.

Fused inner step (``fused=True``, the default): the chain x', m', mu is three vectors over all variables
concatenated, and the element-wise work of a Langevin step (weight decay, momentum, coupling, noise, the
x' and mu updates) runs once on them instead of about ten small ops per variable. XLA compiles that
arithmetic into one cluster (with or without ``--xla``), so an inner step passes over the vectors in a
kernel or two rather than some fifteen ops that each read and write whole vectors: for a large model that
memory traffic, not the arithmetic, is the step's cost. An inner step also concatenates its gradients and
draws its noise (plain ops: XLA could compile the stateless draw, but its CPU kernel is far slower) and
splits x' into the variables. Same arithmetic, same slots.

Mixed precision: with a ``loss_scale`` (``tf.compat.v1.mixed_precision.DynamicLossScale``) every gradient,
inner ones included, is of the scaled loss and is unscaled in float32. An inner gradient that overflows
is replaced by zeros for the rest of its inner step; an outer step in which any gradient overflowed
writes back the anchor x and the old momentum (the step is skipped, counted in ``skipped_steps``) and
lowers the scale. All Entropy-SGD arithmetic is float32 whatever the model computes in.
"""
import math
import numbers
import zlib

from optimizers.gradients import all_finite, average_gradients, skip_bookkeeping
from tfcompat import tf

# Slot names: the parameter-sized buffers this optimizer keeps per variable.
# (x', m' and mu are while-loop state: they live for one outer step and need no variable.)
ANCHOR, MOMENTUM = "anchor", "momentum"
OUTER_STEP, SKIPPED_STEPS = "outer_step", "skipped_steps"
# Folded into the noise's key (seed, k), so that it differs from other draws keyed by the same seed (the
# training stream's: data.pipeline).
NOISE_DRAWS = zlib.crc32(b"langevin noise")


def _check_rate(name, value):
    """Rates given as Python numbers must be finite and >= 0; tensors are checked by the user's schedule."""
    if isinstance(value, bool):
        raise ValueError("%s must be a number or a scalar tensor, not a bool" % name)
    if isinstance(value, numbers.Real) and not (math.isfinite(value) and value >= 0):
        raise ValueError("%s must be finite and >= 0, got %r" % (name, value))


def _distance(a, b):
    """||a - b|| over all elements of two matching tensors or lists of tensors."""
    pairs = zip(tf.nest.flatten(a), tf.nest.flatten(b))
    return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(p - q)) for p, q in pairs]))


def _fold(key, data):
    """Return ``key`` (int [2]) with the integer ``data`` (a Python int or an int tensor) folded in: a new
    stateless key (int64 [2]), a function of both."""
    return tf.random.experimental.stateless_fold_in(key, tf.cast(data, tf.int64))


def _flat(tensors):
    """One float32 vector of ``tensors`` concatenated (a single tensor is only reshaped)."""
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0) if len(tensors) > 1 \
        else tf.reshape(tensors[0], [-1])


def _unflat(vector, like):
    """Split ``vector`` back into tensors shaped like the variables ``like``."""
    sizes = [v.shape.num_elements() for v in like]
    parts = tf.split(vector, sizes) if len(like) > 1 else [vector]
    return [tf.reshape(p, v.shape) for p, v in zip(parts, like)]


class EntropySGD(tf.train.Optimizer):
    """Entropy-SGD whose L Langevin steps run inside the graph: one ``session.run`` is one outer step.

    ``loss_fn`` is a zero-argument callable that builds the scalar minibatch loss on a fresh batch, or a
    list of such losses, one per device (data-parallel towers: their gradients are averaged); it is
    called inside a ``tf.while_loop`` for the inner steps 2..L (step 1 uses the loss given to ``minimize``,
    which may be a list of tower losses too), so one outer step costs exactly L forward/backward passes.
    ``UPDATE_OPS`` that ``loss_fn`` creates (batch-norm moving statistics) run in each inner step.

    After ``apply_gradients``, ``self.stats`` maps names to scalar tensors of the step, to fetch in the same
    ``session.run``: ``gamma``; for L >= 1 also ``inner_loss`` (mean of the inner losses), ``x_mu_norm``
    (||x - mu||, the local-entropy gradient) and ``x_xprime_norm`` (||x - x'|| after the loop); with a
    ``loss_scale`` also ``loss_scale`` and ``skipped_steps`` (outer steps skipped for overflow so far).

    ``seed`` (an int) keys the Langevin noise (the module docstring): equal seeds draw equal noise.
    """

    def __init__(self, loss_fn, learning_rate, L=20, gamma=0.03, scoping=1e-3, langevin_lr=0.1,
                 epsilon=1e-4, mu_decay=0.75, momentum=0.9, nesterov=True, weight_decay=0.0,
                 fused=True, loss_scale=None, seed=0, outer_momentum=None, use_locking=False, name="EntropySGD"):
        if isinstance(L, bool) or not isinstance(L, numbers.Integral) or L < 0:
            raise ValueError("L must be an integer >= 0, got %r" % (L,))
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError("seed must be an integer, got %r" % (seed,))
        outer_momentum = momentum if outer_momentum is None else outer_momentum
        for arg, value in (("learning_rate", learning_rate), ("gamma", gamma), ("scoping", scoping),
                           ("langevin_lr", langevin_lr), ("epsilon", epsilon), ("momentum", momentum),
                           ("outer_momentum", outer_momentum), ("weight_decay", weight_decay)):
            _check_rate(arg, value)
        if isinstance(mu_decay, bool) or not isinstance(mu_decay, numbers.Real) or not 0 <= mu_decay < 1:
            raise ValueError("mu_decay must be a number in [0, 1), got %r" % (mu_decay,))
        if L >= 2 and not callable(loss_fn):
            raise TypeError("loss_fn must be a zero-argument callable building the loss (needed for L >= 2)")
        super(EntropySGD, self).__init__(use_locking, name)
        self._loss_fn = loss_fn
        self._L = int(L)
        self._hyper = dict(learning_rate=learning_rate, gamma=gamma, scoping=scoping,
                           langevin_lr=langevin_lr, epsilon=epsilon, mu_decay=mu_decay,
                           momentum=momentum, outer_momentum=outer_momentum, weight_decay=weight_decay)
        self._nesterov = bool(nesterov)
        self._fused = bool(fused)
        self._loss_scale = loss_scale
        self._seed = int(seed)
        self._first_loss = None
        self.stats = {}

    # ----- gradients -----------------------------------------------------------------------------------

    def compute_gradients(self, loss, var_list=None, **kwargs):
        """Gradients of ``loss`` (a scalar, or a list of tower losses: their mean) w.r.t. ``var_list``
        (default: the trainable variables), of the scaled loss and unscaled when there is a loss scale.
        Also remembers the (mean) loss as the first inner loss, for ``stats['inner_loss']``."""
        if var_list is None:
            var_list = tf.trainable_variables() + tf.get_collection(tf.GraphKeys.TRAINABLE_RESOURCE_VARIABLES)
        var_list = list(var_list)
        self._first_loss, grads = average_gradients(loss, var_list, self._loss_scale)
        return list(zip(grads, var_list))

    # ----- bookkeeping of tf.train.Optimizer ---------------------------------------------------------

    def _create_slots(self, var_list):
        slots = (MOMENTUM,) if self._L == 0 else (ANCHOR, MOMENTUM)
        for v in var_list:
            for slot in slots:
                # Named by role ("w/EntropySGD_momentum"), not by position: a checkpoint whose buffers differ
                # fails to restore instead of loading one buffer into another.
                self._zeros_slot(v, slot, "%s_%s" % (self._name, slot))
        self._create_non_slot_variable(initial_value=0.0, name=OUTER_STEP, colocate_with=var_list[0])
        if self._loss_scale is not None:
            self._create_non_slot_variable(initial_value=0.0, name=SKIPPED_STEPS, colocate_with=var_list[0])

    def _prepare(self):
        self._t = {k: tf.convert_to_tensor(v, dtype=tf.float32, name=k) for k, v in self._hyper.items()}

    @property
    def outer_step(self):
        """The scoping counter k: outer steps taken so far (a float32 variable saved in checkpoints)."""
        return self._get_non_slot_variable(OUTER_STEP, graph=tf.get_default_graph())

    # ----- the update ------------------------------------------------------------------------------

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """Run one outer step: the L Langevin steps from the given gradients at x, then the outer update."""
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        if not pairs:
            raise ValueError("No gradients provided for any variable: %s" % ([v.name for _, v in grads_and_vars],))
        for g, v in pairs:
            if isinstance(g, tf.IndexedSlices):
                raise NotImplementedError(
                    "EntropySGD supports dense gradients only; variable %s has a sparse gradient" % v.name)
        grads = [tf.convert_to_tensor(g) for g, _ in pairs]
        var_list = [v for _, v in pairs]
        with tf.init_scope():
            self._create_slots(var_list)
        with tf.name_scope(name, self._name):
            self._prepare()
            k = self.outer_step.read_value()
            gamma = tf.multiply(self._t["gamma"], tf.pow(1.0 + self._t["scoping"], k), name="gamma")
            self.stats = {"gamma": gamma}
            if self._L == 0:
                outer = self._outer_update(var_list, grads, finite=self._finite(grads))
            else:
                outer = self._entropy_step(var_list, grads, gamma, self._noise_key(k))
            with tf.control_dependencies([outer, gamma]):
                finish = [self.outer_step.assign_add(1.0, use_locking=self._use_locking).op]
                if global_step is not None:
                    finish.append(tf.assign_add(global_step, 1).op)
            return tf.group(*finish, name="step")

    def _noise_key(self, k):
        """Return the key (int64 [2]) of the Langevin noise of outer step ``k`` (the scoping counter's value):
        (seed, k) with NOISE_DRAWS folded in; inner step i folds in i.

        k rather than a global step: it is the optimizer's own (minimize may have no global step; Parle's
        replicas and the local-entropy probe have none), it is saved in checkpoints, and a Parle worker that
        rejoins a cluster sets it to the run's step."""
        return _fold(tf.stack([tf.constant(self._seed, tf.int64), tf.cast(k, tf.int64)]), NOISE_DRAWS)

    def _finite(self, grads):
        """True when every gradient is finite; None (no check at all) without a loss scale."""
        return all_finite(grads) if self._loss_scale is not None else None

    def _entropy_step(self, var_list, grads, gamma, noise_key):
        """Langevin loop from x, its noise keyed by ``noise_key``, then the outer update toward mu; returns
        the op of the outer update."""
        with tf.control_dependencies(self._save_anchors(var_list)):
            anchors = [self.get_slot(v, ANCHOR).read_value() for v in var_list]
        # The chain (x', m', mu) is while-loop state, not variables: it lives for one outer step only.
        # Fused, each is one vector over all variables, so an inner step concatenates only its gradients.
        x = _flat(anchors) if self._fused else anchors
        chain = (x, tf.nest.map_structure(tf.zeros_like, x), x)  # x' <- x, m' <- 0, mu <- x
        chain, finite = self._langevin_step(grads, gamma, x, chain, _fold(noise_key, 0))
        if self._L == 1:  # no loop: building its body would call loss_fn for nothing
            loss_sum = tf.constant(0.0)
        else:
            state = [tf.constant(1), tf.constant(0.0), chain] + ([finite] if finite is not None else [])
            state = tf.while_loop(
                lambda i, *_: i < self._L,
                lambda i, s, c, *f: self._loop_body(i, s, c, f, var_list, gamma, x, noise_key),
                state, parallel_iterations=1, back_prop=False, name="langevin")
            loss_sum, chain = state[1], state[2]
            finite = state[3] if finite is not None else None
        x_prime, _, mu = chain
        losses = self._L - 1
        if self._first_loss is not None:
            loss_sum += tf.cast(self._first_loss, tf.float32)
            losses += 1
        if losses:
            self.stats["inner_loss"] = tf.identity(loss_sum / losses, name="inner_loss")
        self.stats["x_mu_norm"] = tf.identity(_distance(x, mu), name="x_mu_norm")
        self.stats["x_xprime_norm"] = tf.identity(_distance(x, x_prime), name="x_xprime_norm")
        mus = _unflat(mu, var_list) if self._fused else mu
        # The outer update's write of x comes after the loop, whose last reads of x' feed loss_sum and chain.
        with tf.control_dependencies(tf.nest.flatten(chain) + [loss_sum] + list(self.stats.values())):
            return self._outer_update(var_list, self._outer_directions(var_list, anchors, mus, gamma), anchors,
                                      finite)

    def _outer_directions(self, var_list, anchors, mus, gamma):
        """The outer step's direction per variable, before weight decay and momentum: x - mu."""
        return [x - m for x, m in zip(anchors, mus)]

    def _save_anchors(self, var_list):
        """Copy x into the anchor slots (the variables will hold x' during the loop): the assign ops."""
        return [self.get_slot(v, ANCHOR).assign(v.read_value(), use_locking=self._use_locking).op
                for v in var_list]

    def _loop_body(self, i, loss_sum, chain, finite, var_list, gamma, x, noise_key):
        """Inner steps 2..L (``i`` = 1..L-1): x' of the last step written into the variables, a fresh loss
        there (its UPDATE_OPS run here), then a Langevin step with ``i`` folded into ``noise_key``.
        ``finite`` is () without a loss scale, else (whether every gradient so far was finite,).

        x' is written at the top of the step that reads it, not after the step that makes it: the x' of
        step L is never read (the outer update writes x), so an outer step writes the variables L - 1 times.
        """
        updates = tf.get_collection_ref(tf.GraphKeys.UPDATE_OPS)
        known = len(updates)
        # The writes follow the last step's reads (its gradients made this x'); this step's reads and its
        # next batch follow the writes.
        x_prime = _unflat(chain[0], var_list) if self._fused else chain[0]
        with tf.control_dependencies(self._assign_all(var_list, x_prime) + [i]):
            loss = self._loss_fn()
            # Ops made inside the loop cannot be run from outside it: take them out of the collection.
            loop_updates = updates[known:]
            del updates[known:]
            loss, grads = average_gradients(loss, var_list, self._loss_scale)
            missing = [v.name for g, v in zip(grads, var_list) if g is None]
            if missing:
                raise ValueError("loss_fn() does not depend on variables being optimised: %s" % missing)
            chain, step_finite = self._langevin_step(grads, gamma, x, chain, _fold(noise_key, i))
        with tf.control_dependencies(tf.nest.flatten(chain) + loop_updates):
            state = (i + 1, loss_sum + tf.cast(loss, tf.float32), chain)
            return state + ((tf.logical_and(finite[0], step_finite),) if finite else ())

    def _langevin_step(self, grads, gamma, x, chain, key):
        """One SGLD step of the chain (x', m', mu) from the gradients at x', its noise drawn with ``key``
        (per variable: with the variable's index folded in).

        Returns (the new chain; whether the gradients were finite, or None without a loss scale).
        Gradients that overflowed are replaced by zeros, so x' and mu stay finite in a step that will be
        skipped.
        """
        finite = self._finite(grads)
        if finite is not None:
            grads = [tf.where(finite, g, tf.zeros_like(g)) for g in grads]
        if self._fused:
            # Outside XLA: the concatenation, one plain kernel (compiled in, XLA picks each element's source
            # among ~80 gradients; no faster on a CPU), and the draw (``_normal`` keeps itself out).
            with tf.xla.experimental.jit_scope(compile_ops=False):
                g = _flat(grads)
            # The arithmetic as one XLA cluster: a kernel or two that pass over the vectors once, not about
            # fifteen ops that each read and write whole vectors.
            with tf.xla.experimental.jit_scope():
                return self._sgld(*chain, g, x, gamma, self._normal(chain[0].shape, key)), finite
        # Per variable j, with j folded into the key; then [(x', m', mu) of each variable] transposed into
        # ([x'...], [m'...], [mu...]).
        links = [self._sgld(*link, g, anchor, gamma, self._normal(anchor.shape, _fold(key, j)))
                 for j, (link, g, anchor) in enumerate(zip(zip(*chain), grads, x))]
        return tuple(map(list, zip(*links))), finite

    def _normal(self, shape, key):
        """Return a draw of N(0, I) of ``shape`` from ``key``, as a plain op outside any XLA cluster, even
        one it is built in: XLA's CPU kernel for it is several times slower than TensorFlow's (measured by
        bench/langevin_cost.py and bench/step_cost.py, whose ``drawn-in`` variant compiles it in)."""
        with tf.xla.experimental.jit_scope(compile_ops=False):
            return tf.random.stateless_normal(shape, seed=key)

    def _sgld(self, x_prime, m, mu, g, x, gamma, normal):
        """The arithmetic of one Langevin step on matching tensors, with ``normal`` a draw of N(0, I) of
        their shape; returns (x', m', mu) after it."""
        t = self._t
        g = g + t["weight_decay"] * x_prime
        m = t["momentum"] * m + g
        g = g + t["momentum"] * m if self._nesterov else m
        g = g - gamma * (x - x_prime)
        noise = t["epsilon"] * tf.sqrt(2.0 * t["langevin_lr"]) * normal
        x_prime = x_prime - t["langevin_lr"] * g - noise
        return x_prime, m, t["mu_decay"] * mu + (1.0 - t["mu_decay"]) * x_prime

    def _assign_all(self, variables, values):
        return [v.assign(value, use_locking=self._use_locking).op for v, value in zip(variables, values)]

    def _outer_update(self, var_list, directions, anchors=None, finite=None):
        """x <- x - lr * outer_momentum(d + weight_decay * x); with anchors=None x is the variable's value.

        With a loss scale, ``finite`` says whether every gradient of the step was finite: if not, x and
        the momentum keep their values from before the step, the skipped-step counter grows and the loss
        scale is lowered (and raised after enough finite steps), all by the loss scale's own rule.
        """
        t = self._t
        ops = []
        for i, (v, d) in enumerate(zip(var_list, directions)):
            x = v.read_value() if anchors is None else anchors[i]
            slot = self.get_slot(v, MOMENTUM)
            m_old = slot.read_value()
            d = d + t["weight_decay"] * x
            m_new = t["outer_momentum"] * m_old + d
            d = d + t["outer_momentum"] * m_new if self._nesterov else m_new
            x_new = x - t["learning_rate"] * d
            if finite is not None:
                x_new, m_new = tf.where(finite, x_new, x), tf.where(finite, m_new, m_old)
            ops += self._assign_all([slot, v], [m_new, x_new])
        if finite is not None:
            skipped = self._get_non_slot_variable(SKIPPED_STEPS, graph=tf.get_default_graph())
            bookkeeping, stats = skip_bookkeeping(self._loss_scale, finite, skipped)
            ops += bookkeeping
            self.stats.update(stats)
        return tf.group(*ops)

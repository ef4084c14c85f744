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
    m <- momentum * m + d ;  d <- d + momentum * m     (Nesterov)  or  d <- m
    x <- x - learning_rate * d

This is the authors' PyTorch code (momentum in both loops, gamma folded into the learning rate of the
outer step) with the scoping counter incremented as in their Lua code. The noise term is the authors'
``langevin_lr * epsilon / sqrt(0.5 * langevin_lr) * N``, written as ``epsilon * sqrt(2 * langevin_lr) * N``
so that langevin_lr = 0 is not a division by zero.

During the loop the model's variables hold x' (so ``loss_fn`` needs no knowledge of the optimizer);
the anchor x is kept in a slot and written back by the outer update, so x' never leaks out of a step.
"""
import math
import numbers

from tfcompat import tf

# Slot names: the parameter-sized buffers this optimizer keeps per variable.
ANCHOR, MU, LANGEVIN_MOMENTUM, MOMENTUM = "anchor", "mu", "langevin_momentum", "momentum"
OUTER_STEP = "outer_step"


def _check_rate(name, value):
    """Rates given as Python numbers must be finite and >= 0; tensors are checked by the user's schedule."""
    if isinstance(value, bool):
        raise ValueError("%s must be a number or a scalar tensor, not a bool" % name)
    if isinstance(value, numbers.Real) and not (math.isfinite(value) and value >= 0):
        raise ValueError("%s must be finite and >= 0, got %r" % (name, value))


def _global_norm(tensors):
    return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(t)) for t in tensors]))


class EntropySGD(tf.train.Optimizer):
    """Entropy-SGD whose L Langevin steps run inside the graph: one ``session.run`` is one outer step.

    ``loss_fn`` is a zero-argument callable that builds the scalar minibatch loss on a fresh batch; it is
    called inside a ``tf.while_loop`` for the inner steps 2..L (step 1 uses the loss given to ``minimize``),
    so one outer step costs exactly L forward/backward passes. ``UPDATE_OPS`` that ``loss_fn`` creates
    (batch-norm moving statistics) run in each inner step.

    After ``apply_gradients``, ``self.stats`` maps names to scalar tensors of the step, to fetch in the same
    ``session.run``: ``gamma``; for L >= 1 also ``inner_loss`` (mean of the inner losses), ``x_mu_norm``
    (||x - mu||, the local-entropy gradient) and ``x_xprime_norm`` (||x - x'|| after the loop).
    """

    def __init__(self, loss_fn, learning_rate, L=20, gamma=0.03, scoping=1e-3, langevin_lr=0.1,
                 epsilon=1e-4, mu_decay=0.75, momentum=0.9, nesterov=True, weight_decay=0.0,
                 use_locking=False, name="EntropySGD"):
        if isinstance(L, bool) or not isinstance(L, numbers.Integral) or L < 0:
            raise ValueError("L must be an integer >= 0, got %r" % (L,))
        for arg, value in (("learning_rate", learning_rate), ("gamma", gamma), ("scoping", scoping),
                           ("langevin_lr", langevin_lr), ("epsilon", epsilon), ("momentum", momentum),
                           ("weight_decay", weight_decay)):
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
                           momentum=momentum, weight_decay=weight_decay)
        self._nesterov = bool(nesterov)
        self._first_loss = None
        self.stats = {}

    # ----- bookkeeping of tf.train.Optimizer ---------------------------------------------------------

    def compute_gradients(self, loss, var_list=None, **kwargs):
        """As the base class; also remembers ``loss`` as the first inner loss, for ``stats['inner_loss']``."""
        self._first_loss = loss
        return super(EntropySGD, self).compute_gradients(loss, var_list=var_list, **kwargs)

    def _create_slots(self, var_list):
        slots = (MOMENTUM,) if self._L == 0 else (ANCHOR, MU, LANGEVIN_MOMENTUM, MOMENTUM)
        for v in var_list:
            for slot in slots:
                self._zeros_slot(v, slot, self._name)
        self._create_non_slot_variable(initial_value=0.0, name=OUTER_STEP, colocate_with=var_list[0])

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
            k = self.outer_step
            gamma = tf.multiply(self._t["gamma"], tf.pow(1.0 + self._t["scoping"], k.read_value()), name="gamma")
            self.stats = {"gamma": gamma}
            if self._L == 0:
                outer = self._outer_update(var_list, grads)
            else:
                outer = self._entropy_step(var_list, grads, gamma)
            with tf.control_dependencies([outer, gamma]):
                finish = [k.assign_add(1.0, use_locking=self._use_locking).op]
                if global_step is not None:
                    finish.append(tf.assign_add(global_step, 1).op)
            return tf.group(*finish, name="step")

    def _entropy_step(self, var_list, grads, gamma):
        """Langevin loop from x, then the outer update toward mu; returns the op of the outer update."""
        with tf.control_dependencies(self._start_outer_step(var_list)):
            first = self._langevin_step(var_list, grads, gamma)
        with tf.control_dependencies([first]):
            if self._L == 1:  # no loop: building its body would call loss_fn for nothing
                loss_sum = tf.constant(0.0)
            else:
                _, loss_sum = tf.while_loop(
                    lambda i, _: i < self._L,
                    lambda i, s: self._loop_body(i, s, var_list, gamma),
                    [tf.constant(1), tf.constant(0.0)], parallel_iterations=1, back_prop=False,
                    name="langevin")
        with tf.control_dependencies([loss_sum]):
            anchors = [self.get_slot(v, ANCHOR).read_value() for v in var_list]
            mus = [self.get_slot(v, MU).read_value() for v in var_list]
            x_prime = [v.read_value() for v in var_list]
        losses = self._L - 1
        if self._first_loss is not None:
            loss_sum += tf.cast(self._first_loss, tf.float32)
            losses += 1
        if losses:
            self.stats["inner_loss"] = tf.identity(loss_sum / losses, name="inner_loss")
        self.stats["x_mu_norm"] = tf.identity(_global_norm([x - m for x, m in zip(anchors, mus)]), name="x_mu_norm")
        self.stats["x_xprime_norm"] = tf.identity(
            _global_norm([x - xp for x, xp in zip(anchors, x_prime)]), name="x_xprime_norm")
        with tf.control_dependencies(x_prime + list(self.stats.values())):
            return self._outer_update(var_list, [x - m for x, m in zip(anchors, mus)], anchors)

    def _start_outer_step(self, var_list):
        """x <- x (saved as the anchor), mu <- x, m' <- 0: returns the assign ops."""
        ops = []
        for v in var_list:
            x = v.read_value()
            ops.append(self.get_slot(v, ANCHOR).assign(x, use_locking=self._use_locking).op)
            ops.append(self.get_slot(v, MU).assign(x, use_locking=self._use_locking).op)
            m = self.get_slot(v, LANGEVIN_MOMENTUM)
            ops.append(m.assign(tf.zeros_like(x), use_locking=self._use_locking).op)
        return ops

    def _loop_body(self, i, loss_sum, var_list, gamma):
        """Inner steps 2..L: a fresh loss at x' (its UPDATE_OPS run here), then a Langevin step."""
        updates = tf.get_collection_ref(tf.GraphKeys.UPDATE_OPS)
        known = len(updates)
        # Reads of x' and the next batch wait for this iteration to start, i.e. for the last step's writes.
        with tf.control_dependencies([i]):
            loss = tf.cast(self._loss_fn(), tf.float32)
            # Ops made inside the loop cannot be run from outside it: take them out of the collection.
            loop_updates = updates[known:]
            del updates[known:]
            grads = tf.gradients(loss, var_list)
            missing = [v.name for g, v in zip(grads, var_list) if g is None]
            if missing:
                raise ValueError("loss_fn() does not depend on variables being optimised: %s" % missing)
            step = self._langevin_step(var_list, grads, gamma)
        with tf.control_dependencies([step] + loop_updates):
            return i + 1, loss_sum + loss

    def _langevin_step(self, var_list, grads, gamma):
        """One SGLD step of every x' (the variables themselves) and of mu; returns their grouped op."""
        t = self._t
        noise_scale = t["epsilon"] * tf.sqrt(2.0 * t["langevin_lr"])
        ops = []
        for v, g in zip(var_list, grads):
            x_prime = v.read_value()
            g = g + t["weight_decay"] * x_prime
            m = self.get_slot(v, LANGEVIN_MOMENTUM)
            g = self._momentum(m, g)
            g = g - gamma * (self.get_slot(v, ANCHOR).read_value() - x_prime)
            new_x_prime = (x_prime - t["langevin_lr"] * g
                           - noise_scale * tf.random.normal(tf.shape(x_prime), dtype=x_prime.dtype))
            mu = self.get_slot(v, MU)
            ops.append(v.assign(new_x_prime, use_locking=self._use_locking).op)
            ops.append(mu.assign(t["mu_decay"] * mu.read_value() + (1.0 - t["mu_decay"]) * new_x_prime,
                                 use_locking=self._use_locking).op)
        return tf.group(*ops)

    def _outer_update(self, var_list, directions, anchors=None):
        """x <- x - lr * momentum(d + weight_decay * x); with anchors=None x is the variable's value."""
        t = self._t
        ops = []
        for i, (v, d) in enumerate(zip(var_list, directions)):
            x = v.read_value() if anchors is None else anchors[i]
            d = self._momentum(self.get_slot(v, MOMENTUM), d + t["weight_decay"] * x)
            ops.append(v.assign(x - t["learning_rate"] * d, use_locking=self._use_locking).op)
        return tf.group(*ops)

    def _momentum(self, slot, g):
        """m <- momentum * m + g; returns g + momentum * m (Nesterov) or m. The slot write comes first."""
        m_new = self._t["momentum"] * slot.read_value() + g
        with tf.control_dependencies([slot.assign(m_new, use_locking=self._use_locking)]):
            return tf.identity(g + self._t["momentum"] * m_new if self._nesterov else m_new)

"""Step counts and learning-rate schedules in *effective epochs*.

An effective epoch is one pass of gradient evaluations over the training set: an Entropy-SGD outer step
with L Langevin steps consumes L minibatches (L = 0 and the baselines: one), so
``effective_epoch = outer_steps * batches_per_step * batch_size / train_size`` for every optimizer.
The functions take Python numbers or tensors for ``step`` alike (plain arithmetic), so the graph and
the session loop count epochs the same way.
"""
import math

from tfcompat import tf


def batches_per_step(optimizer, L):
    """Return the minibatches one outer step consumes: L for Entropy-SGD with L >= 1 and for each Parle
    replica, else 1."""
    return max(L, 1) if optimizer in ("entropy-sgd", "parle") else 1


def examples_per_batch(s):
    """Return the examples in one minibatch of settings ``s``: ``batch_size`` on each of the ``gpus``
    data-parallel devices. (A Parle replica reads its own stream of such batches; epochs count per replica.)"""
    return s.batch_size * s.gpus


def effective_epoch(step, batch_size, per_step, train_size):
    """Return the effective epoch reached after ``step`` outer steps (a float, or a float tensor)."""
    return step * (per_step * batch_size / float(train_size))


def steps_for_epochs(epochs, batch_size, per_step, train_size):
    """Return the outer steps needed to reach ``epochs`` effective epochs (rounded up, at least 1)."""
    return max(1, math.ceil(epochs * train_size / float(per_step * batch_size) - 1e-9))


def learning_rate(global_step, base, decay, boundaries, batch_size, per_step, train_size):
    """Return the float32 learning-rate tensor: ``base * decay ** (number of boundaries <= epoch)``.

    ``boundaries`` are effective epochs; ``epoch`` is the effective epoch at the start of the step, so the
    step that crosses a boundary still uses the old rate and every step after it the new one.
    """
    epoch = effective_epoch(tf.cast(global_step, tf.float64), batch_size, per_step, train_size)
    passed = tf.add_n([tf.constant(0.0, tf.float64)] +
                      [tf.cast(epoch >= float(b), tf.float64) for b in boundaries])
    return tf.cast(base * tf.pow(tf.constant(decay, tf.float64), passed), tf.float32, name="learning_rate")


def uses_esgd_recipe(s):
    """Return whether settings ``s`` train with Entropy-SGD's own recipe (``esgd_learning_rate``, its
    schedule and ``esgd_weight_decay``): Entropy-SGD with L >= 1, and Parle. With L = 0 Entropy-SGD is
    plain Nesterov SGD (optimizers/entropy_sgd.py), so it takes the SGD recipe, not an outer rate of 1."""
    return s.optimizer == "parle" or (s.optimizer == "entropy-sgd" and s.L >= 1)


def schedule_settings(s):
    """Return (base, decay, boundaries) of the learning-rate schedule for the optimizer in settings ``s``."""
    if uses_esgd_recipe(s):
        return s.esgd_learning_rate, s.esgd_lr_decay, s.esgd_lr_epochs
    if s.optimizer == "adam":
        return s.adam_learning_rate, s.lr_decay, s.lr_epochs
    return s.learning_rate, s.lr_decay, s.lr_epochs


def every_steps(epochs, batch_size, per_step, train_size):
    """Return the outer-step interval equivalent to ``epochs`` effective epochs (at least 1)."""
    return max(1, int(round(epochs * train_size / float(per_step * batch_size))))


def bn_start_batch(step, eval_every, bn_batches):
    """Return the batch of the batch-norm re-estimation stream at which the evaluation at outer step
    ``step`` starts: every evaluation before it (one each ``eval_every`` outer steps) read ``bn_batches``,
    and the one at ``step`` itself (a multiple of ``eval_every``, or the run's last step) comes after them."""
    return (max(step - 1, 0) // eval_every) * bn_batches

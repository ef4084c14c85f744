"""Re-estimate batch-norm moving statistics at the current weights x, before an evaluation.

Why: during an Entropy-SGD step the model's weights hold the Langevin iterates x', so the moving
statistics are averages collected at x', not at x; the authors' Lua code recomputes them at x before
evaluating. We do the same with a cumulative average: after the pass every moving statistic equals the
mean of its batch statistic over ``n`` training batches (decay 1/(i+1)), not an exponential average.

The model's update ops compute ``m <- decay * m + (1 - decay) * b``. Run from m = 0 they leave
``(1 - decay) * b``; we sum that over the batches (resetting m to 0 after each) and divide the sum by
``n * (1 - decay)``. The batches come from a separate training iterator, so the main data stream is
not touched; the model runs with batch norm in training mode and dropout off, as the authors'
``compute_bn_params`` does: the statistics are those of the network that evaluation runs.
"""
from tfcompat import tf


class BatchNormReestimator(object):
    """Graph ops of the re-estimation pass over ``moving_vars``; ``run`` does the pass in a session.

    ``images``: a tensor yielding a fresh training batch at each run (from an iterator the caller
    initialises); ``build_training_model(images)`` builds the model with batch norm in training mode
    (and dropout off), adding the moving-statistic updates (with decay ``decay``) to ``UPDATE_OPS``; they
    are taken out of the collection here, so no later user of the collection runs them by accident.
    """

    def __init__(self, images, build_training_model, moving_vars, decay, name="bn_reestimate"):
        self.moving_vars = list(moving_vars)
        updates = tf.get_collection_ref(tf.GraphKeys.UPDATE_OPS)
        known = len(updates)
        build_training_model(images)
        self._update = tf.group(*updates[known:])
        del updates[known:]
        with tf.variable_scope(name):
            # Scratch sums, local variables: not saved in checkpoints.
            sums = [tf.get_variable("sum%d" % i, v.shape, tf.float32, initializer=tf.zeros_initializer(),
                                    trainable=False, collections=[tf.GraphKeys.LOCAL_VARIABLES])
                    for i, v in enumerate(self.moving_vars)]
            self._reset = tf.group(*[v.assign(tf.zeros_like(v)) for v in self.moving_vars] +
                                   [s.assign(tf.zeros_like(s)) for s in sums])
            collect = []
            for s, v in zip(sums, self.moving_vars):
                with tf.control_dependencies([s.assign_add(v)]):
                    collect.append(v.assign(tf.zeros_like(v)))
            self._collect = tf.group(*collect)
            self._count = tf.placeholder(tf.float32, [], "count")
            self._finish = tf.group(*[v.assign(s / (self._count * (1.0 - decay)))
                                      for v, s in zip(self.moving_vars, sums)])

    def run(self, sess, batches):
        """Set every moving statistic to its mean over ``batches`` fresh batches (the iterator of
        ``images`` must be initialised). Returns nothing; the model's weights are not changed."""
        sess.run(self._reset)
        for _ in range(batches):
            sess.run(self._update)
            sess.run(self._collect)
        sess.run(self._finish, {self._count: float(batches)})

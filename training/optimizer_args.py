"""The optimizers of the settings: Entropy-SGD's (and each Parle replica's) arguments, the baselines'
``tf.train`` optimizers, and fp16's loss scale."""
from tfcompat import tf
from training import schedule

# fp16's dynamic loss scale: TF's defaults (start high, halve on overflow, double after 2000 finite steps).
FP16_INITIAL_LOSS_SCALE, FP16_INCREMENT_PERIOD = 2.0 ** 15, 2000


def esgd_arguments(s, lr, loss_scale):
    """Keyword arguments of EntropySGD (and of each Parle replica) for settings ``s``."""
    recipe = schedule.uses_esgd_recipe(s)  # with L = 0, Entropy-SGD is Nesterov SGD with the SGD recipe
    return dict(learning_rate=lr, L=s.L, gamma=s.g0, scoping=s.g1, langevin_lr=s.langevin_lr,
                epsilon=s.epsilon, mu_decay=s.mu_decay, momentum=s.momentum, nesterov=s.nesterov,
                weight_decay=s.esgd_weight_decay if recipe else s.weight_decay,
                outer_momentum=s.esgd_outer_momentum if recipe else s.momentum, loss_scale=loss_scale)


def baseline_optimizer(s, lr):
    """Return the tf.train.Optimizer of a baseline (sgd, momentum, adam) with learning rate ``lr``."""
    if s.optimizer == "momentum":
        return tf.train.MomentumOptimizer(lr, s.momentum, use_nesterov=s.nesterov)
    if s.optimizer == "adam":
        return tf.train.AdamOptimizer(lr)
    return tf.train.GradientDescentOptimizer(lr)


def make_loss_scale(s):
    """TF's dynamic loss scale for fp16 (whose gradients underflow without one), else None."""
    if s.precision != "fp16":
        return None
    return tf.mixed_precision.DynamicLossScale(FP16_INITIAL_LOSS_SCALE, FP16_INCREMENT_PERIOD)

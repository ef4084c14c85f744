"""Gradients of data-parallel towers and of a scaled loss, and the loss scale's bookkeeping: the one
place each is written, for EntropySGD, Parle and the baseline optimizers."""
from tfcompat import tf


def average_gradients(loss, var_list, loss_scale=None):
    """Return (mean loss, gradients) of ``loss`` w.r.t. ``var_list``.

    ``loss`` is a scalar or a list of tower losses (one per device, each the mean over that device's
    share of the batch): the gradients are averaged over towers, each computed on its tower's device,
    so equal shares give the gradient of the whole batch. With ``loss_scale`` (a TF LossScale) each
    gradient is of the scaled loss and is divided by the scale afterwards, in float32. A variable the
    loss does not depend on gets None.
    """
    losses = list(loss) if isinstance(loss, (list, tuple)) else [loss]
    scale = loss_scale() if loss_scale is not None else None
    per_tower = [tf.gradients(tower * tf.cast(scale, tower.dtype) if scale is not None else tower, var_list,
                              colocate_gradients_with_ops=True) for tower in losses]
    grads = []
    for tower_grads in zip(*per_tower):
        if any(g is None for g in tower_grads):
            grads.append(None)
            continue
        g = tower_grads[0] if len(losses) == 1 else tf.add_n(list(tower_grads)) / float(len(losses))
        grads.append(g / scale if scale is not None else g)
    mean = losses[0] if len(losses) == 1 else tf.add_n(losses) / float(len(losses))
    return mean, grads


def all_finite(tensors):
    """A boolean scalar: every element of every tensor is finite."""
    return tf.reduce_all([tf.reduce_all(tf.is_finite(t)) for t in tensors])


def skip_bookkeeping(loss_scale, finite, skipped):
    """Ops that add a skipped step to the float32 variable ``skipped`` unless ``finite``, and let the
    loss scale react to ``finite`` (lower at once, raise after its period of finite steps).

    Returns (ops, stats): ``stats`` has ``loss_scale`` (the scale the next step uses) and ``skipped_steps``.
    """
    # The loss scale's own rule reads finiteness from tensors: a zero, or an infinity for an overflow.
    update, _ = loss_scale.update([tf.where(finite, 0.0, float("inf"))])
    count = skipped.assign_add(1.0 - tf.cast(finite, tf.float32))
    with tf.control_dependencies([update]):
        scale = tf.identity(loss_scale(), name="loss_scale")
    stats = {"loss_scale": scale, "skipped_steps": tf.identity(count, name="skipped_steps")}
    return [update, count.op, scale.op], stats

"""The training step of one model, Entropy-SGD's or a baseline's (sgd, momentum, adam), over the -g
towers that split each batch; the model built and evaluated is the model trained."""
from data.pipeline import normalizer
from optimizers import EntropySGD
from optimizers.gradients import all_finite, average_gradients, skip_bookkeeping
from tfcompat import tf
from training.devices import local_devices
from training.evaluation_graph import evaluation_tower
from training.optimizer_args import baseline_optimizer, esgd_arguments, make_loss_scale
from training.streams import train_iterator
from training.towers import Towers, new_variables
from training.train_step import TrainStep, compile_scope


def build(inputs):
    """Build the step of ``inputs`` (train_step.StepInputs) on ``s.gpus`` towers; return its TrainStep."""
    s = inputs.s
    with compile_scope(s):
        # One device: its batches are prefetched into its memory. Towers split each batch on the host.
        it = train_iterator(inputs.record_dir, s, s.seed, inputs.start_batch,
                            local_devices(1)[0] if s.gpus == 1 else None)
        towers = Towers(inputs.model_fn, s, inputs.num_classes, local_devices(s.gpus), inputs.global_step,
                        normalizer(inputs.record_dir))
        images, labels, key = it.get_next()
        (losses, correct), model_vars = new_variables(lambda: towers(images, labels, key))
        update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        loss_scale = make_loss_scale(s)
        with tf.control_dependencies(update_ops):
            if s.optimizer == "entropy-sgd":
                train_op, stats = _entropy_sgd_step(inputs, lambda: towers(*it.get_next())[0], losses, loss_scale)
            else:
                train_op, stats = _baseline_step(inputs, losses, loss_scale)
        fetches = dict(stats, loss=tf.reduce_mean(losses), accuracy=tf.reduce_mean(correct))
    test = evaluation_tower(inputs.model_fn, inputs.record_dir, s, inputs.num_classes)
    return TrainStep(train_op=train_op, fetches=fetches, images=images, train_init=it.initializer,
                     model_vars=model_vars, test=test, sync_replicas=None, num_devices=s.gpus, streams=1)


def _entropy_sgd_step(inputs, next_loss, losses, loss_scale):
    """Entropy-SGD's outer step on (tower) ``losses``, its Langevin steps on ``next_loss()`` (the next
    batch's): (train op, its statistics)."""
    s = inputs.s
    opt = EntropySGD(next_loss, seed=s.seed, **esgd_arguments(s, inputs.learning_rate, loss_scale))
    return opt.minimize(losses, global_step=inputs.global_step), opt.stats


def _baseline_step(inputs, losses, loss_scale):
    """One step of a baseline optimizer on (tower) ``losses``: (train op, extra stats).

    Weight decay is added to each tower's loss (classic L2). With a loss scale, a step whose gradients
    overflowed is not applied (but counted, and the global step still advances: the data stream's
    position is a function of the global step)."""
    s, global_step = inputs.s, inputs.global_step
    opt = baseline_optimizer(s, inputs.learning_rate)
    weights = tf.trainable_variables()
    if s.weight_decay > 0:
        l2 = s.weight_decay * tf.add_n([tf.nn.l2_loss(v) for v in weights])
        losses = [tower + l2 for tower in losses] if isinstance(losses, list) else losses + l2
    _, grads = average_gradients(losses, weights, loss_scale)
    pairs = [(g, v) for g, v in zip(grads, weights) if g is not None]
    if loss_scale is None:
        return opt.apply_gradients(pairs, global_step=global_step), {}
    finite = all_finite([g for g, _ in pairs])
    skipped = tf.get_variable("skipped_steps", [], initializer=tf.zeros_initializer(), trainable=False)
    apply = tf.cond(finite, lambda: opt.apply_gradients(pairs), tf.no_op)
    bookkeeping, stats = skip_bookkeeping(loss_scale, finite, skipped)
    with tf.control_dependencies([apply] + bookkeeping):
        return tf.assign_add(global_step, 1).op, stats

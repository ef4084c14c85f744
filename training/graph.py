"""Build the one training graph: data iterators, model, loss, optimizer, evaluation and savers.

What ``build`` returns (a namespace of tensors and ops) is all the session loop needs; nothing here
runs a session. One ``session.run`` of ``train_op`` is one outer step.

Data stream position: the training dataset is a deterministic function of (seed, batch index), and one
outer step consumes ``batches_per_step`` batches (the outer loss is the optimizer's first inner batch),
so the loop initialises the iterator with ``start_batch = global_step * batches_per_step`` and a resumed
run sees exactly the batches an uninterrupted one would have seen.

Weight decay: Entropy-SGD takes it as its ``weight_decay`` argument (``esgd_weight_decay``, applied in
both loops as in the authors' code; with L = 0, plain Nesterov SGD, the SGD recipe's ``weight_decay``). For sgd, momentum and adam, ``weight_decay / 2 * sum of squares of
all trainable variables`` is added to the minimised objective (classic L2, so Adam sees it in its
gradient too); the logged training loss is the cross-entropy alone, comparable across optimizers.
"""
import types

from data.pipeline import test_dataset, train_dataset
from models import get_model
from models.layers import BN_DECAY
from optimizers import EntropySGD
from tfcompat import tf

from training import schedule
from training.bn import BatchNormReestimator
from training.checkpoints import Checkpoints

IMAGES_IN_SUMMARY = 4


def make_optimizer(s, lr, loss_fn):
    """Return the tf.train.Optimizer that settings ``s`` ask for, with learning rate ``lr``."""
    if s.optimizer == "entropy-sgd":
        return EntropySGD(loss_fn, lr, L=s.L, gamma=s.g0, scoping=s.g1, langevin_lr=s.langevin_lr,
                          epsilon=s.epsilon, mu_decay=s.mu_decay, momentum=s.momentum, nesterov=s.nesterov,
                          weight_decay=s.esgd_weight_decay if schedule.uses_esgd_recipe(s) else s.weight_decay)
    if s.optimizer == "momentum":
        return tf.train.MomentumOptimizer(lr, s.momentum, use_nesterov=s.nesterov)
    if s.optimizer == "adam":
        return tf.train.AdamOptimizer(lr)
    return tf.train.GradientDescentOptimizer(lr)


def _metrics(logits, labels):
    """Return (per-example cross-entropy [B], per-example correctness as float32 [B])."""
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    correct = tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), labels), tf.float32)
    return xent, correct


def _nan_hook(loss, global_step, at_step):
    """Return ``loss``, or NaN in every step that starts at global step >= ``at_step``
    (the hidden --debug-nan-at-step test hook; None: ``loss`` unchanged)."""
    if at_step is None:
        return loss
    return tf.where(global_step >= at_step, tf.constant(float("nan")), loss)


def evaluation_tower(model_fn, record_dir, s, num_classes):
    """Return the evaluation on the whole test split: its iterator's initializer and the per-batch
    sums (loss_sum, correct, count) of the model in evaluation mode, sharing the training weights."""
    iterator = tf.data.make_initializable_iterator(test_dataset(record_dir, s.batch_size))
    images, labels = iterator.get_next()
    xent, correct = _metrics(model_fn(images, False, num_classes, s), labels)
    return types.SimpleNamespace(init=iterator.initializer, loss_sum=tf.reduce_sum(xent),
                                 correct=tf.reduce_sum(correct), count=tf.size(labels))


def _train_iterator(record_dir, s, seed):
    """Return (iterator, start_batch placeholder) of an infinite training stream with ``seed``."""
    start = tf.placeholder(tf.int64, [], "start_batch")
    ds = train_dataset(record_dir, s.batch_size, seed, augment=s.augment, rotate=s.rotate, start_batch=start)
    return tf.data.make_initializable_iterator(ds), start


def bn_reestimation(model_fn, record_dir, s, num_classes, moving_vars):
    """Return the batch-norm re-estimation pass at x (training.bn) for an Entropy-SGD run with
    ``bn_reestimate`` on, with ``init``/``start_batch`` of its own training stream (seed + 1); else None."""
    if s.optimizer != "entropy-sgd" or not s.bn_reestimate or not moving_vars:
        return None
    bn_it, bn_start = _train_iterator(record_dir, s, s.seed + 1)
    bn = BatchNormReestimator(bn_it.get_next()[0],
                              lambda x: model_fn(x, True, num_classes, s, use_dropout=False),
                              moving_vars, BN_DECAY)
    bn.init, bn.start_batch = bn_it.initializer, bn_start
    return bn


def build(s, info, record_dir, run_dir):
    """Build the graph for settings ``s`` on dataset ``info`` (records in ``record_dir``); return its handles.

    ``run_dir`` is the run's checkpoint folder (for the Savers). The returned namespace holds the
    train op and its fetches, the iterators' initialisers, the evaluation and BN re-estimation parts,
    the image summary, the best-accuracy variable, the weights' finiteness check and the Checkpoints object.
    """
    model_fn = get_model(s.model)
    tf.set_random_seed(s.seed)
    global_step = tf.train.get_or_create_global_step()
    per_step = schedule.batches_per_step(s.optimizer, s.L)

    train_it, start_batch = _train_iterator(record_dir, s, s.seed)

    def loss_fn():
        """A fresh training batch's mean cross-entropy, model in training mode (the inner losses)."""
        images, labels = train_it.get_next()
        xent, _ = _metrics(model_fn(images, True, info.num_classes, s), labels)
        return _nan_hook(tf.reduce_mean(xent), global_step, s.debug_nan_at_step)

    known = set(tf.global_variables())
    images, labels = train_it.get_next()
    xent, correct = _metrics(model_fn(images, True, info.num_classes, s), labels)
    loss = _nan_hook(tf.reduce_mean(xent), global_step, s.debug_nan_at_step)
    model_vars = [v for v in tf.global_variables() if v not in known]
    moving_vars = [v for v in model_vars if v not in tf.trainable_variables()]
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)

    base, decay, boundaries = schedule.schedule_settings(s)
    lr = schedule.learning_rate(global_step, base, decay, boundaries, s.batch_size, per_step, info.train_size)
    opt = make_optimizer(s, lr, loss_fn)
    objective = loss
    if s.optimizer != "entropy-sgd" and s.weight_decay > 0:
        objective = loss + s.weight_decay * tf.add_n([tf.nn.l2_loss(v) for v in tf.trainable_variables()])
    with tf.control_dependencies(update_ops):
        train_op = opt.minimize(objective, global_step=global_step)

    fetches = {"loss": loss, "accuracy": tf.reduce_mean(correct), "learning_rate": lr}
    if s.optimizer == "entropy-sgd":
        fetches.update(opt.stats)

    bn = bn_reestimation(model_fn, record_dir, s, info.num_classes, moving_vars)

    best_accuracy = tf.get_variable("best_test_accuracy", [], initializer=tf.constant_initializer(-1.0),
                                    trainable=False)
    best_value = tf.placeholder(tf.float32, [], "best_value")
    # One fetch before every save: an update can overflow the weights while the loss, computed before
    # it, is still finite; such weights must never become a checkpoint.
    weights_finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.is_finite(v)) for v in tf.trainable_variables()]),
                                   name="weights_finite")
    return types.SimpleNamespace(
        global_step=global_step, train_op=train_op, fetches=fetches, per_step=per_step,
        train_init=train_it.initializer, start_batch=start_batch,
        test=evaluation_tower(model_fn, record_dir, s, info.num_classes), bn=bn,
        image_summary=tf.summary.image("input", images[:IMAGES_IN_SUMMARY], max_outputs=IMAGES_IN_SUMMARY),
        best_accuracy=best_accuracy, best_value=best_value, set_best=best_accuracy.assign(best_value),
        weights_finite=weights_finite,
        model_vars=model_vars,
        init=tf.group(tf.global_variables_initializer(), tf.local_variables_initializer()),
        checkpoints=Checkpoints(run_dir, tf.global_variables(), s.keep_checkpoints))

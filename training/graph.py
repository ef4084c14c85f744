"""Build the one training graph: data iterators, model, loss, optimizer, evaluation and savers.

What ``build`` returns (a namespace of tensors and ops) is all the session loop needs; nothing here
runs a session. One ``session.run`` of ``train_op`` is one outer step.

Data stream position: the training dataset is a deterministic function of (seed, batch index), and one
outer step consumes ``batches_per_step`` batches (the outer loss is the optimizer's first inner batch),
so the loop initialises the iterator with ``start_batch = global_step * batches_per_step`` and a resumed
run sees exactly the batches an uninterrupted one would have seen.

Random draws: every one of training is stateless, so a resumed run draws what an uninterrupted one
would. Dropout takes the model key that comes with each batch (a function of the stream's seed and the
batch's position; each -g tower folds in its index); Entropy-SGD's Langevin noise is keyed by the run's
seed (each Parle replica's: its stream's), the outer step and the inner step. ``tf.set_random_seed`` is
left to the initial weights.

Weight decay: Entropy-SGD takes it as its ``weight_decay`` argument (``esgd_weight_decay``, applied in
both loops as in the authors' code; with L = 0, plain Nesterov SGD, the SGD recipe's ``weight_decay``). For sgd, momentum and adam, ``weight_decay / 2 * sum of squares of
all trainable variables`` is added to the minimised objective (classic L2, so Adam sees it in its
gradient too); the logged training loss is the cross-entropy alone, comparable across optimizers.
"""
import contextlib
import types

from data.pipeline import normalizer, test_dataset, to_device, train_dataset
from models import get_model
from models.layers import BN_DECAY
from optimizers import EntropySGD, ParleReplica, Replica, parle_step
from optimizers.gradients import all_finite, average_gradients, skip_bookkeeping
from tfcompat import tf

from training import schedule
from training.bn import BatchNormReestimator
from training.checkpoints import Checkpoints
from training.devices import local_devices
from training.settings import model_settings

IMAGES_IN_SUMMARY = 4
# fp16's dynamic loss scale: TF's defaults (start high, halve on overflow, double after 2000 finite steps).
FP16_INITIAL_LOSS_SCALE, FP16_INCREMENT_PERIOD = 2.0 ** 15, 2000
# Parle replica a reads the training stream, and draws its Langevin noise, with seed
# ``seed + a * REPLICA_SEED_STRIDE`` (replica 0: the run's own, so one replica is Entropy-SGD); BN
# re-estimation reads the stream with seed + 1.
REPLICA_SEED_STRIDE = 7919


def esgd_arguments(s, lr, loss_scale):
    """Keyword arguments of EntropySGD (and of each Parle replica) for settings ``s``."""
    return dict(learning_rate=lr, L=s.L, gamma=s.g0, scoping=s.g1, langevin_lr=s.langevin_lr,
                epsilon=s.epsilon, mu_decay=s.mu_decay, momentum=s.momentum, nesterov=s.nesterov,
                weight_decay=s.esgd_weight_decay if schedule.uses_esgd_recipe(s) else s.weight_decay,
                loss_scale=loss_scale)


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
    xent, correct = _metrics(model_fn(normalizer(record_dir)(images), False, num_classes, model_settings(s)), labels)
    return types.SimpleNamespace(init=iterator.initializer, loss_sum=tf.reduce_sum(xent),
                                 correct=tf.reduce_sum(correct), count=tf.size(labels))


def _train_iterator(record_dir, s, seed, start, device=None):
    """Return an initializable iterator over the infinite training stream with ``seed``, from batch
    ``start`` (an int64 placeholder fed at initialisation): (uint8 images, labels, model key) in batches of
    ``examples_per_batch(s)``; with a GPU ``device``, prefetched into its memory (the copy overlaps the step)."""
    ds = train_dataset(record_dir, schedule.examples_per_batch(s), seed, augment=s.augment, rotate=s.rotate,
                       start_batch=start, with_key=True)
    return tf.data.make_initializable_iterator(to_device(ds, device))


def bn_reestimation(model_fn, record_dir, s, num_classes, moving_vars):
    """Return the batch-norm re-estimation pass at x (training.bn) for an Entropy-SGD or Parle run with
    ``bn_reestimate`` on, with ``init``/``start_batch`` of its own training stream (seed + 1); else None."""
    if not schedule.uses_esgd_recipe(s) or not s.bn_reestimate or not moving_vars:
        return None
    bn_start = tf.placeholder(tf.int64, [], "bn_start_batch")
    bn_it = _train_iterator(record_dir, s, s.seed + 1, bn_start)
    bn = BatchNormReestimator(normalizer(record_dir)(bn_it.get_next()[0]),
                              lambda x: model_fn(x, True, num_classes, model_settings(s), use_dropout=False),
                              moving_vars, BN_DECAY)
    bn.init, bn.start_batch = bn_it.initializer, bn_start
    return bn


class Towers(object):
    """The model on one training batch split over ``devices`` (-g): per-tower mean losses and metrics.

    Only the first tower's batch-norm updates are kept (as TF's multi-GPU CIFAR-10 tutorial does): the
    others would move the same moving averages again with their own shares of the batch.
    """

    def __init__(self, model_fn, s, num_classes, devices, global_step, normalize):
        self.model_fn, self.s, self.num_classes = model_fn, s, num_classes
        self.devices, self.global_step, self.normalize = devices, global_step, normalize

    def __call__(self, images, labels, key):
        """Return (losses: a scalar for one device or a list, one per tower; correct [B]) of
        uint8 ``images``, each tower's share normalised on its own device. ``key``: the batch's model key
        (dropout), with the tower's index folded in for each of several towers."""
        if len(self.devices) == 1:
            xent, correct = _metrics(self._logits(images, key), labels)
            return self._loss(xent), correct
        updates = tf.get_collection_ref(tf.GraphKeys.UPDATE_OPS)
        losses, corrects = [], []
        n = len(self.devices)
        for t, (device, x, y) in enumerate(zip(self.devices, tf.split(images, n), tf.split(labels, n))):
            known = len(updates)
            with tf.device(device), tf.name_scope("tower_%d" % t):
                tower_key = tf.random.experimental.stateless_fold_in(key, tf.constant(t, tf.int64))
                xent, correct = _metrics(self._logits(x, tower_key), y)
                losses.append(self._loss(xent))
            if t:
                del updates[known:]
            corrects.append(correct)
        return losses, tf.concat(corrects, 0)

    def _logits(self, images, key):
        """The model in training mode on uint8 ``images``, normalised here, its dropout keyed by ``key``."""
        return self.model_fn(self.normalize(images), True, self.num_classes, model_settings(self.s), dropout_key=key)

    def _loss(self, xent):
        return _nan_hook(tf.reduce_mean(xent), self.global_step, self.s.debug_nan_at_step)


def _new_variables(build):
    """Run ``build()``; return (its result, the global variables it created)."""
    known = set(tf.global_variables())
    result = build()
    return result, [v for v in tf.global_variables() if v not in known]


def _baseline_step(opt, losses, s, loss_scale, global_step):
    """One step of a baseline optimizer on (tower) ``losses``: (train op, extra stats).

    Weight decay is added to each tower's loss (classic L2). With a loss scale, a step whose gradients
    overflowed is not applied (but counted, and the global step still advances: the data stream's
    position is a function of the global step)."""
    weights = tf.trainable_variables()
    if s.weight_decay > 0:
        l2 = s.weight_decay * tf.add_n([tf.nn.l2_loss(v) for v in weights])
        losses = [l + l2 for l in losses] if isinstance(losses, list) else losses + l2
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


def _single_model_step(s, num_classes, model_fn, lr, global_step, train_it, normalize):
    """The training step of Entropy-SGD or a baseline on one model, over ``s.gpus`` towers.

    Returns (train op, fetches, first batch's images, model variables)."""
    towers = Towers(model_fn, s, num_classes, local_devices(s.gpus), global_step, normalize)
    images, labels, key = train_it.get_next()
    (losses, correct), model_vars = _new_variables(lambda: towers(images, labels, key))
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    loss_scale = make_loss_scale(s)
    stats = {}
    with tf.control_dependencies(update_ops):
        if s.optimizer == "entropy-sgd":
            opt = EntropySGD(lambda: towers(*train_it.get_next())[0], seed=s.seed,
                             **esgd_arguments(s, lr, loss_scale))
            train_op = opt.minimize(losses, global_step=global_step)
            stats = opt.stats
        else:
            train_op, stats = _baseline_step(baseline_optimizer(s, lr), losses, s, loss_scale, global_step)
    fetches = dict(stats, loss=tf.reduce_mean(losses), accuracy=tf.reduce_mean(correct))
    return train_op, fetches, images, model_vars


def _parle_replica(a, device, s, num_classes, model_fn, lr, global_step, start_batch, record_dir, reference_vars):
    """Build Parle replica ``a`` on ``device``: its own training stream, model copy (variables
    ``replica_A/model/...``) and ParleReplica optimizer coupled to ``reference_vars``.

    Returns (Replica, its iterator's initializer, first images, their correctness [B])."""
    seed = s.seed + a * REPLICA_SEED_STRIDE
    it = _train_iterator(record_dir, s, seed, start_batch, device)
    towers = Towers(model_fn, s, num_classes, [device], global_step, normalizer(record_dir))
    with tf.variable_scope("replica_%d" % a) as scope:
        pass

    def replica_loss(images, labels, key):
        """The replica's model (in its own variable scope, also from inside the Langevin loop)."""
        with tf.device(device), tf.variable_scope(scope, auxiliary_name_scope=False), tf.name_scope(scope.name + "/"):
            return towers(images, labels, key)

    images, labels, key = it.get_next()
    (loss, correct), replica_vars = _new_variables(lambda: replica_loss(images, labels, key))
    by_name = {v.op.name.split("/", 1)[1]: v for v in replica_vars}
    var_list = [by_name[v.op.name] for v in reference_vars]
    with tf.device(device):
        opt = ParleReplica(lambda: replica_loss(*it.get_next())[0], reference=dict(zip(var_list, reference_vars)),
                           rho=s.rho, rho_scoping=s.rho_scoping, name="Parle_%d" % a, seed=seed,
                           **esgd_arguments(s, lr, make_loss_scale(s)))
    return Replica(opt, loss, var_list), it.initializer, images, correct


def _parle_step(s, num_classes, model_fn, lr, global_step, start_batch, record_dir, reference_vars, cluster):
    """Parle's training step. In one process: ``s.replicas`` replicas, one per local device, each with
    its own stream, and x̄ <- their mean. In a cluster: this worker's replica on its own device, moving
    x̄ (on the ps) by its delta / number of workers; only the chief's steps count in the global step.

    Returns (train op, fetches, the first replica's first images, iterator initialisers, the op that
    sets every replica here to the reference and its scoping counter to the global step)."""
    if cluster is None:
        placement = list(enumerate(local_devices(s.replicas)))
        update = dict(update="mean", global_step=global_step)
    else:
        placement = [(cluster.task_index, cluster.device)]
        update = dict(update="delta", num_replicas=cluster.num_workers,
                      global_step=global_step if cluster.is_chief else None, statistics=cluster.is_chief)
    built = [_parle_replica(a, device, s, num_classes, model_fn, lr, global_step, start_batch, record_dir,
                            reference_vars)
             for a, device in placement]
    replicas = [b[0] for b in built]
    with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
        train_op, stats = parle_step(replicas, reference_vars, **update)
    # A replica (re)started from x̄ takes the run's outer step count as its scoping counter k, so that
    # gamma and rho continue where the run is (a cluster worker's counter lives on its own device and is
    # not in the chief's checkpoint; in one process k is the global step anyway).
    k = tf.cast(global_step, tf.float32)
    sync = tf.group(*[v.assign(ref) for r in replicas for v, ref in zip(r.var_list, reference_vars)],
                    *[r.optimizer.outer_step.assign(k) for r in replicas], name="replicas_from_reference")
    (first, _, images, correct) = built[0]
    fetches = dict(stats, loss=first.loss, accuracy=tf.reduce_mean(correct))
    return train_op, fetches, images, tf.group(*[b[1] for b in built]), sync


def _worker_variables_to_local():
    """Cluster worker: move the variables on this worker's own device (its replica, their slots) from the
    global to the local collection. The chief initialises and saves only global variables (those on the
    ps); each worker initialises its local ones itself and starts its replica from x̄."""
    global_vars = tf.get_collection_ref(tf.GraphKeys.GLOBAL_VARIABLES)
    local = [v for v in global_vars if tf.DeviceSpec.from_string(v.device).job == "worker"]
    global_vars[:] = [v for v in global_vars if v not in set(local)]
    for v in local:
        tf.add_to_collection(tf.GraphKeys.LOCAL_VARIABLES, v)


def _placement(cluster):
    """The device scope of the whole graph: none in one process; in a cluster, variables on the ps (TF's
    replica_device_setter) and every op on this worker, except where a narrower scope says otherwise."""
    if cluster is None:
        return contextlib.nullcontext()
    return tf.device(tf.train.replica_device_setter(cluster=cluster.cluster_spec(), worker_device=cluster.device))


def build(s, info, record_dir, run_dir, cluster=None):
    """Build the graph for settings ``s`` on dataset ``info`` (records in ``record_dir``); return its handles.

    ``cluster``: this worker's training.cluster.Cluster for Parle on TF's distributed runtime, or None.

    ``run_dir`` is the run's checkpoint folder (for the Savers). The returned namespace holds the
    train op and its fetches, the iterators' initialisers, the evaluation and BN re-estimation parts,
    the image summary, the best-accuracy variable, the weights' finiteness check, the Checkpoints
    object, ``sync_replicas`` (Parle: the op that starts every replica at the reference, at the run's
    outer step; else None),
    ``num_devices`` (the local devices the graph places work on, for ``devices.session_config``), ``init``
    (every variable) and ``local_init`` (the local ones: what a non-chief worker initialises).
    """
    model_fn = get_model(s.model)
    tf.set_random_seed(s.seed)
    with _placement(cluster):
        g = _build_in_place(s, info, record_dir, model_fn, cluster)
    if cluster is not None:
        _worker_variables_to_local()
    g.init = tf.group(tf.global_variables_initializer(), tf.local_variables_initializer())
    g.local_init = tf.local_variables_initializer()
    g.checkpoints = Checkpoints(run_dir, tf.global_variables(), s.keep_checkpoints)
    return g


def _build_in_place(s, info, record_dir, model_fn, cluster):
    """The graph of ``build`` without its initialisers and savers (which need the final collections)."""
    global_step = tf.train.get_or_create_global_step()
    per_step = schedule.batches_per_step(s.optimizer, s.L)
    base, decay, boundaries = schedule.schedule_settings(s)
    lr = schedule.learning_rate(global_step, base, decay, boundaries, schedule.examples_per_batch(s), per_step,
                                info.train_size)
    start_batch = tf.placeholder(tf.int64, [], "start_batch")
    sync_replicas = None
    if s.optimizer == "parle":  # the reference x̄ is the model that is evaluated: create it first
        test, model_vars = _new_variables(lambda: evaluation_tower(model_fn, record_dir, s, info.num_classes))
    # XLA compiles what it can of the step (the model, the optimizer, the Langevin while_loop); the
    # iterator's ops stay outside its clusters.
    with tf.xla.experimental.jit_scope() if s.xla else contextlib.nullcontext():
        if s.optimizer == "parle":
            train_op, fetches, images, train_init, sync_replicas = _parle_step(
                s, info.num_classes, model_fn, lr, global_step, start_batch, record_dir, model_vars, cluster)
        else:
            # One device: its batches are prefetched into its memory. Towers split each batch on the host.
            train_it = _train_iterator(record_dir, s, s.seed, start_batch, local_devices(1)[0] if s.gpus == 1 else None)
            train_init = train_it.initializer
            train_op, fetches, images, model_vars = _single_model_step(
                s, info.num_classes, model_fn, lr, global_step, train_it, normalizer(record_dir))
    if s.optimizer != "parle":
        test = evaluation_tower(model_fn, record_dir, s, info.num_classes)
    fetches["learning_rate"] = lr
    moving_vars = [v for v in model_vars if v not in tf.trainable_variables()]
    # In a cluster the re-estimation's scratch sums stay on this worker: on the ps, a worker (re)joining
    # would re-initialise them under the chief's pass.
    with tf.device(cluster.device) if cluster is not None else contextlib.nullcontext():
        bn = bn_reestimation(model_fn, record_dir, s, info.num_classes, moving_vars)

    best_accuracy = tf.get_variable("best_test_accuracy", [], initializer=tf.constant_initializer(-1.0),
                                    trainable=False)
    best_value = tf.placeholder(tf.float32, [], "best_value")
    # One fetch before every save: an update can overflow the weights while the loss, computed before
    # it, is still finite; such weights must never become a checkpoint.
    weights_finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.is_finite(v)) for v in tf.trainable_variables()]),
                                   name="weights_finite")
    replicas = s.replicas if s.optimizer == "parle" and cluster is None else 1
    return types.SimpleNamespace(
        global_step=global_step, train_op=train_op, fetches=fetches, per_step=per_step,
        images_per_step=schedule.examples_per_batch(s) * per_step * replicas,
        train_init=train_init, start_batch=start_batch, test=test, bn=bn,
        image_summary=tf.summary.image("input", images[:IMAGES_IN_SUMMARY], max_outputs=IMAGES_IN_SUMMARY),
        best_accuracy=best_accuracy, best_value=best_value, set_best=best_accuracy.assign(best_value),
        weights_finite=weights_finite, model_vars=model_vars, sync_replicas=sync_replicas,
        num_devices=replicas if s.optimizer == "parle" else s.gpus)

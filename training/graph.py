"""Build the one training graph: data streams, model, loss, optimizer, evaluation; nothing here runs a
session or touches a file.

``build`` returns a ``TrainingGraph``: every tensor, op and variable the session side needs. One
``session.run`` of its ``train_op`` is one outer step. The step itself comes from the builder of the
run's mode, chosen once: ``model_step`` (Entropy-SGD or a baseline on one model over -g towers) or
``parle_replicas`` (Parle); ``placement`` says where it lives (one process, or a cluster worker).

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
both loops as in the authors' code; with L = 0, plain Nesterov SGD, the SGD recipe's ``weight_decay``).
For sgd, momentum and adam, ``weight_decay / 2 * sum of squares of all trainable variables`` is added to
the minimised objective (classic L2, so Adam sees it in its gradient too); the logged training loss is
the cross-entropy alone, comparable across optimizers.
"""
import dataclasses
import typing

from models import get_model
from tfcompat import tf
from training import model_step, parle_replicas, schedule
from training.evaluation_graph import BatchNormPass, EvaluationTower, bn_reestimation
from training.placement import placement
from training.train_step import StepInputs

IMAGES_IN_SUMMARY = 4


@dataclasses.dataclass(frozen=True)
class TrainingGraph:
    """The handles of a built training graph."""
    global_step: tf.Variable  # outer steps done (in a cluster: the chief's)
    per_step: int  # training batches one outer step reads from each stream (L for Entropy-SGD and Parle)
    images_per_step: int  # training examples one outer step reads in this process (for images/s)
    num_devices: int  # local devices the graph places work on (devices.session_config)
    start_batch: tf.Tensor  # int64 placeholder: the batch the training streams start from
    train_init: tf.Operation  # initialises the training streams at ``start_batch``
    train_op: tf.Operation  # one outer step
    fetches: dict  # scalar tensors logged after each step: loss, accuracy, learning_rate, optimizer statistics
    image_summary: tf.Tensor  # the first training batch's images, for TensorBoard
    test: EvaluationTower  # the evaluation on the whole test split
    bn: typing.Optional[BatchNormPass]  # batch-norm re-estimation at x before an evaluation, or None
    model_vars: list  # the evaluated model's variables (what -r restores; Parle: the reference x̄)
    best_accuracy: tf.Variable  # the best test accuracy so far (-1 before the first evaluation)
    best_value: tf.Tensor  # float32 placeholder fed to ``set_best``
    set_best: tf.Operation  # best_accuracy <- best_value
    weights_finite: tf.Tensor  # whether every trainable variable is finite: checked before every save
    sync_replicas: typing.Optional[tf.Operation]  # Parle: starts every replica here at x̄, at the run's step
    init: tf.Operation  # initialises every variable (a fresh start, or before a restore)
    local_init: tf.Operation  # initialises the local variables only (a cluster's non-chief worker)
    saved_vars: list  # what a checkpoint holds: the global variables (in a cluster, those on the ps)


def build(s, info, record_dir, cluster=None):
    """Build the training graph for settings ``s`` on dataset ``info`` (records in ``record_dir``) in the
    default graph; return its TrainingGraph.

    ``cluster``: this worker's training.cluster.Cluster for Parle on TF's distributed runtime, or None.
    """
    build_step = parle_replicas.build if s.optimizer == "parle" else model_step.build
    model_fn = get_model(s.model)
    tf.set_random_seed(s.seed)
    place = placement(cluster)
    with place.graph_scope():
        global_step = tf.train.get_or_create_global_step()
        per_step = schedule.batches_per_step(s.optimizer, s.L)
        base, decay, boundaries = schedule.schedule_settings(s)
        lr = schedule.learning_rate(global_step, base, decay, boundaries, schedule.examples_per_batch(s),
                                    per_step, info.train_size)
        start_batch = tf.placeholder(tf.int64, [], "start_batch")
        step = build_step(StepInputs(s=s, num_classes=info.num_classes, record_dir=record_dir, model_fn=model_fn,
                                     global_step=global_step, learning_rate=lr, start_batch=start_batch,
                                     placement=place))
        moving_vars = [v for v in step.model_vars if v not in tf.trainable_variables()]
        with place.scratch_scope():
            bn = bn_reestimation(model_fn, record_dir, s, info.num_classes, moving_vars)
        best_accuracy = tf.get_variable("best_test_accuracy", [], initializer=tf.constant_initializer(-1.0),
                                        trainable=False)
        best_value = tf.placeholder(tf.float32, [], "best_value")
        # One fetch before every save: an update can overflow the weights while the loss, computed before
        # it, is still finite; such weights must never become a checkpoint.
        weights_finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.is_finite(v)) for v in tf.trainable_variables()]),
                                       name="weights_finite")
        image_summary = tf.summary.image("input", step.images[:IMAGES_IN_SUMMARY], max_outputs=IMAGES_IN_SUMMARY)
        set_best = best_accuracy.assign(best_value)
    place.finish()
    return TrainingGraph(
        global_step=global_step, per_step=per_step,
        images_per_step=schedule.examples_per_batch(s) * per_step * step.streams, num_devices=step.num_devices,
        start_batch=start_batch, train_init=step.train_init, train_op=step.train_op,
        fetches=dict(step.fetches, learning_rate=lr), image_summary=image_summary, test=step.test, bn=bn,
        model_vars=step.model_vars, best_accuracy=best_accuracy, best_value=best_value, set_best=set_best,
        weights_finite=weights_finite, sync_replicas=step.sync_replicas,
        init=tf.group(tf.global_variables_initializer(), tf.local_variables_initializer()),
        local_init=tf.local_variables_initializer(), saved_vars=tf.global_variables())

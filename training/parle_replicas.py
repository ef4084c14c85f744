"""Parle's training step: replicas of the model, each with its own training stream and ParleReplica
optimizer, coupled to the reference x̄ (the model that is evaluated and saved).

In one process: ``s.replicas`` replicas, one per local device, and x̄ <- their mean. On a cluster
worker: this worker's replica on its own device, moving x̄ (on the ps) by its delta / number of workers;
only the chief's steps count in the global step (training.placement says which replicas go where).
"""
import dataclasses

from data.pipeline import normalizer
from optimizers import ParleReplica, Replica, parle_step
from tfcompat import tf
from training.evaluation_graph import evaluation_tower
from training.optimizer_args import esgd_arguments, make_loss_scale
from training.streams import train_iterator
from training.towers import Towers, new_variables
from training.train_step import TrainStep, compile_scope

# Parle replica a reads the training stream, and draws its Langevin noise, with seed
# ``seed + a * REPLICA_SEED_STRIDE`` (replica 0: the run's own, so one replica is Entropy-SGD).
REPLICA_SEED_STRIDE = 7919


def build(inputs):
    """Build the reference x̄ with its evaluation, then the replicas placed here and their step; return
    the TrainStep of ``inputs`` (train_step.StepInputs)."""
    s = inputs.s
    # The reference is the model that is evaluated: create it first, so its variables are x̄'s.
    test, reference_vars = new_variables(
        lambda: evaluation_tower(inputs.model_fn, inputs.record_dir, s, inputs.num_classes))
    with compile_scope(s):
        placed = inputs.placement.replica_devices(s.replicas)
        built = [_replica(inputs, a, device, reference_vars) for a, device in placed]
        replicas = [b.replica for b in built]
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            train_op, stats = parle_step(replicas, reference_vars, **_update(inputs))
        sync = _sync_replicas(replicas, reference_vars, inputs.global_step)
        fetches = dict(stats, loss=replicas[0].loss, accuracy=tf.reduce_mean(built[0].correct))
        train_init = tf.group(*[b.init for b in built])
    return TrainStep(train_op=train_op, fetches=fetches, images=built[0].images, train_init=train_init,
                     model_vars=reference_vars, test=test, sync_replicas=sync, num_devices=len(placed),
                     streams=len(placed))


@dataclasses.dataclass(frozen=True)
class _BuiltReplica:
    """One replica as built."""
    replica: Replica  # its optimizer, loss and model copy's variables
    init: tf.Operation  # initialises its training stream
    images: tf.Tensor  # its first batch's uint8 images
    correct: tf.Tensor  # their correctness [B]


def _replica(inputs, a, device, reference_vars):
    """Build Parle replica ``a`` on ``device``: its own training stream, model copy (variables
    ``replica_A/model/...``) and ParleReplica optimizer coupled to ``reference_vars``."""
    s = inputs.s
    seed = s.seed + a * REPLICA_SEED_STRIDE
    it = train_iterator(inputs.record_dir, s, seed, inputs.start_batch, device)
    towers = Towers(inputs.model_fn, s, inputs.num_classes, [device], inputs.global_step,
                    normalizer(inputs.record_dir))
    with tf.variable_scope("replica_%d" % a) as scope:
        pass

    def replica_loss(images, labels, key):
        """The replica's model (in its own variable scope, also from inside the Langevin loop)."""
        with tf.device(device), tf.variable_scope(scope, auxiliary_name_scope=False), tf.name_scope(scope.name + "/"):
            return towers(images, labels, key)

    images, labels, key = it.get_next()
    (loss, correct), replica_vars = new_variables(lambda: replica_loss(images, labels, key))
    by_name = {v.op.name.split("/", 1)[1]: v for v in replica_vars}
    var_list = [by_name[v.op.name] for v in reference_vars]
    with tf.device(device):
        opt = ParleReplica(lambda: replica_loss(*it.get_next())[0], reference=dict(zip(var_list, reference_vars)),
                           rho=s.rho, rho_scoping=s.rho_scoping, name="Parle_%d" % a, seed=seed,
                           **esgd_arguments(s, inputs.learning_rate, make_loss_scale(s)))
    return _BuiltReplica(Replica(opt, loss, var_list), it.initializer, images, correct)


def _update(inputs):
    """How the replicas here move x̄ (``parle_step``'s arguments): to their mean when they are all in this
    process; on a cluster worker by its delta / number of workers, the chief alone counting the global
    step and reporting the statistics."""
    cluster = inputs.placement.cluster
    if cluster is None:
        return dict(update="mean", global_step=inputs.global_step)
    return dict(update="delta", num_replicas=cluster.num_workers,
                global_step=inputs.global_step if cluster.is_chief else None, statistics=cluster.is_chief)


def _sync_replicas(replicas, reference_vars, global_step):
    """The op that sets every replica here to the reference and its scoping counter to the global step.

    A replica (re)started from x̄ takes the run's outer step count as its scoping counter k, so that
    gamma and rho continue where the run is (a cluster worker's counter lives on its own device and is
    not in the chief's checkpoint; in one process k is the global step anyway)."""
    k = tf.cast(global_step, tf.float32)
    return tf.group(*[v.assign(ref) for r in replicas for v, ref in zip(r.var_list, reference_vars)],
                    *[r.optimizer.outer_step.assign(k) for r in replicas], name="replicas_from_reference")

"""What a training step's builder is given and what it returns: the contract between ``graph.build``
and the builder of each mode (``model_step``: one model over -g towers; ``parle_replicas``: Parle)."""
import contextlib
import dataclasses
import typing

from tfcompat import tf
from training.evaluation_graph import EvaluationTower
from training.placement import Placement


@dataclasses.dataclass(frozen=True)
class StepInputs:
    """What every builder starts from."""
    s: typing.Any  # the settings
    num_classes: int  # of the dataset
    record_dir: str  # the dataset's record folder
    model_fn: typing.Callable  # models.get_model(s.model)
    global_step: tf.Variable  # the outer step counter
    learning_rate: tf.Tensor  # the step's learning rate (its schedule follows the global step)
    start_batch: tf.Tensor  # int64 placeholder: the batch the training streams start from
    placement: Placement  # where replicas, variables and scratch state go (one process or a cluster)


@dataclasses.dataclass(frozen=True)
class TrainStep:
    """What a builder adds to the graph: the outer step, its streams, and the model it trains."""
    train_op: tf.Operation  # one outer step
    fetches: dict  # scalar tensors logged after each step: loss, accuracy, the optimizer's statistics
    images: tf.Tensor  # the first training batch's uint8 images (for the image summary)
    train_init: tf.Operation  # initialises every training stream of the step at ``start_batch``
    model_vars: list  # the variables of the evaluated model (Parle: the reference x̄)
    test: EvaluationTower  # the evaluation of that model
    sync_replicas: typing.Optional[tf.Operation]  # Parle: starts every replica here at x̄; else None
    num_devices: int  # local devices the step places work on (devices.session_config)
    streams: int  # training streams one outer step reads here (Parle: one per replica in this process)


def compile_scope(s):
    """XLA's scope with --xla (else none): XLA compiles what it can of the step (the model, the
    optimizer, the Langevin while_loop); the iterator's ops stay outside its clusters."""
    return tf.xla.experimental.jit_scope() if s.xla else contextlib.nullcontext()

"""The evaluation's part of a graph: the test tower over the whole test split, and the batch-norm
re-estimation pass that sets the moving statistics at x first (training.bn). train.py's graph and
evaluate.py build the same two, so a checkpoint is evaluated the same way by both."""
import dataclasses

from data.pipeline import normalizer, test_dataset
from models.layers import BN_DECAY
from tfcompat import tf
from training.bn import BatchNormReestimator
from training.settings import model_settings
from training.streams import train_iterator
from training.towers import metrics

# The re-estimation reads a training stream of its own, seeded apart from the main one (seed + 1).
BN_SEED_OFFSET = 1


@dataclasses.dataclass(frozen=True)
class EvaluationTower:
    """The model in evaluation mode over the test split, sharing the training weights; per-batch sums,
    which ``training.evaluation.evaluate`` adds up over the whole split."""
    init: tf.Operation  # (re)starts the test split's iterator at its first batch
    loss_sum: tf.Tensor  # the batch's summed cross-entropy
    correct: tf.Tensor  # the batch's number of correct predictions (float32)
    count: tf.Tensor  # the batch's number of examples


@dataclasses.dataclass(frozen=True)
class BatchNormPass:
    """The re-estimation pass with the training stream it reads."""
    reestimator: BatchNormReestimator  # the pass's ops over the model's moving statistics
    init: tf.Operation  # initialises the pass's stream at ``start_batch``
    start_batch: tf.Tensor  # int64 placeholder: the stream's first batch, fed with ``init``

    @property
    def moving_vars(self):
        """The moving statistics the pass sets."""
        return self.reestimator.moving_vars

    def run(self, sess, batches):
        """Set every moving statistic to its mean over the stream's next ``batches`` batches."""
        self.reestimator.run(sess, batches)


def evaluation_tower(model_fn, record_dir, s, num_classes):
    """Build and return the EvaluationTower of ``model_fn`` on ``record_dir``'s test split."""
    iterator = tf.data.make_initializable_iterator(test_dataset(record_dir, s.batch_size))
    images, labels = iterator.get_next()
    xent, correct = metrics(model_fn(normalizer(record_dir)(images), False, num_classes, model_settings(s)), labels)
    return EvaluationTower(init=iterator.initializer, loss_sum=tf.reduce_sum(xent),
                           correct=tf.reduce_sum(correct), count=tf.size(labels))


def bn_reestimation(model_fn, record_dir, s, num_classes, moving_vars):
    """Return the BatchNormPass over ``moving_vars`` for a run with ``bn_reestimate`` on and a model with
    batch norm (whatever its optimizer: every one is evaluated the same way); else None."""
    if not s.bn_reestimate or not moving_vars:
        return None
    start_batch = tf.placeholder(tf.int64, [], "bn_start_batch")
    iterator = train_iterator(record_dir, s, s.seed + BN_SEED_OFFSET, start_batch)
    reestimator = BatchNormReestimator(normalizer(record_dir)(iterator.get_next()[0]),
                                       lambda x: model_fn(x, True, num_classes, model_settings(s), use_dropout=False),
                                       moving_vars, BN_DECAY)
    return BatchNormPass(reestimator, iterator.initializer, start_batch)

"""Evaluate the model on the whole test split (every example once, never a single batch)."""
import math

from tfcompat import tf


def evaluate(sess, test):
    """Run the test tower ``test`` (from graph) over its whole finite dataset.

    Returns (mean loss, accuracy) over all test examples. The iterator is re-initialised here, so
    every call sees the whole split from its start.
    """
    sess.run(test.init)
    loss_sum, correct, count = 0.0, 0.0, 0
    while True:
        try:
            batch_loss, batch_correct, batch_count = sess.run([test.loss_sum, test.correct, test.count])
        except tf.errors.OutOfRangeError:
            break
        loss_sum += float(batch_loss)
        correct += float(batch_correct)
        count += int(batch_count)
    if count == 0:
        raise ValueError("the test split is empty")
    return loss_sum / count, correct / count


def is_finite(*values):
    """Return whether every number in ``values`` is finite (no NaN, no infinity)."""
    return all(math.isfinite(float(v)) for v in values)

"""The model on training batches: per-example metrics, and the towers that split a batch over devices."""
from tfcompat import tf
from training.settings import model_settings


def metrics(logits, labels):
    """Return (per-example cross-entropy [B], per-example correctness as float32 [B])."""
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    correct = tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), labels), tf.float32)
    return xent, correct


def nan_hook(loss, global_step, at_step):
    """Return ``loss``, or NaN in every step that starts at global step >= ``at_step``
    (the hidden --debug-nan-at-step test hook; None: ``loss`` unchanged)."""
    if at_step is None:
        return loss
    return tf.where(global_step >= at_step, tf.constant(float("nan")), loss)


def new_variables(build):
    """Run ``build()``; return (its result, the global variables it created)."""
    known = set(tf.global_variables())
    result = build()
    return result, [v for v in tf.global_variables() if v not in known]


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
            xent, correct = metrics(self._logits(images, key), labels)
            return self._loss(xent), correct
        updates = tf.get_collection_ref(tf.GraphKeys.UPDATE_OPS)
        losses, corrects = [], []
        n = len(self.devices)
        for t, (device, x, y) in enumerate(zip(self.devices, tf.split(images, n), tf.split(labels, n))):
            known = len(updates)
            with tf.device(device), tf.name_scope("tower_%d" % t):
                tower_key = tf.random.experimental.stateless_fold_in(key, tf.constant(t, tf.int64))
                xent, correct = metrics(self._logits(x, tower_key), y)
                losses.append(self._loss(xent))
            if t:
                del updates[known:]
            corrects.append(correct)
        return losses, tf.concat(corrects, 0)

    def _logits(self, images, key):
        """The model in training mode on uint8 ``images``, normalised here, its dropout keyed by ``key``."""
        return self.model_fn(self.normalize(images), True, self.num_classes, model_settings(self.s),
                             dropout_key=key)

    def _loss(self, xent):
        return nan_hook(tf.reduce_mean(xent), self.global_step, self.s.debug_nan_at_step)

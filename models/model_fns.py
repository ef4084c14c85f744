"""Each model of models.MODEL_NAMES as the ``model_fn`` that ``models.get_model`` returns: the model's
variables under the shared ``model`` scope, its computation in the configured precision."""
from tfcompat import tf

from models import layers
from models.allcnn import allcnn
from models.lenet import lenet
from models.mnistfc import mnistfc
from models.wrn import wrn

_BUILDERS = {"wrn": wrn, "allcnn": allcnn, "lenet": lenet, "mnistfc": mnistfc}  # by models.MODEL_NAMES


def model_fn_of(name):
    """Return the ``model_fn`` of model ``name`` (one of models.MODEL_NAMES; see there)."""
    build = _BUILDERS[name]

    def model_fn(images, is_training, num_classes, config, use_dropout=None, dropout_key=None):
        """Return float32 logits [batch, num_classes] of the model on NHWC ``images``.

        Raises a ValueError when dropout is on, the model has some and ``dropout_key`` is None."""
        dtype = layers.compute_dtype(config.precision)
        with tf.variable_scope("model", reuse=tf.AUTO_REUSE):
            images = layers.to_data_format(tf.cast(images, dtype), config.data_format)
            logits = build(images, is_training, _dropout_key(is_training, use_dropout, dropout_key),
                           num_classes, config)
            return tf.cast(logits, tf.float32)

    return model_fn


def _dropout_key(is_training, use_dropout, dropout_key):
    """The key the model's dropout layers get (layers.dropout): None with dropout off (by default in
    evaluation mode), else ``dropout_key``, or ``layers.MISSING_KEY`` when there is none."""
    if not (is_training if use_dropout is None else use_dropout):
        return None
    return layers.MISSING_KEY if dropout_key is None else dropout_key

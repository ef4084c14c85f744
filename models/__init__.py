"""The model registry: ``get_model(name)`` for the names in ``MODEL_NAMES``.

Every model is a function ``model_fn(images, is_training, num_classes, config) -> logits``:
``images`` float32 NHWC, ``is_training`` a Python bool (batch norm from the batch, with moving-average
updates, or from the moving statistics), ``config`` any object with ``wrn_depth``, ``wrn_width``,
``dropout``, ``data_format`` and ``precision``. Dropout follows ``is_training`` unless ``use_dropout``
says otherwise: batch-norm re-estimation runs batch norm in training mode with dropout off, as the
authors do. Dropout draws its masks statelessly from ``dropout_key`` (int, shape [2]), which a model with
dropout on needs: the training stream gives one per batch (``data.pipeline.train_dataset(with_key=True)``),
so the masks are a function of the run's seed, the batch's position in the stream and the layer, and a
resumed run continues exactly. Its variables live under ``tf.variable_scope("model",
reuse=tf.AUTO_REUSE)``, so every call in one graph (training, evaluation, the optimizer's Langevin loop)
shares the same weights.

``config.precision`` (``layers.PRECISIONS``) picks the dtype the model computes in: the images are cast
to it on entry and the logits back to float32 on exit, while every variable stays float32 (see
models/layers.py), so fp32, bf16 and fp16 runs share checkpoints.
"""
from tfcompat import tf

from models import layers
from models.allcnn import allcnn
from models.lenet import lenet
from models.mnistfc import mnistfc
from models.wrn import wrn

MODEL_NAMES = ("wrn", "allcnn", "lenet", "mnistfc")
_BUILDERS = {"wrn": wrn, "allcnn": allcnn, "lenet": lenet, "mnistfc": mnistfc}


def get_model(name):
    """Return the ``model_fn`` of model ``name``; a ValueError listing the known names otherwise."""
    if name not in _BUILDERS:
        raise ValueError("unknown model %r; known models: %s" % (name, ", ".join(MODEL_NAMES)))
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

"""The model registry: ``get_model(name)`` for the names in ``MODEL_NAMES``.

Every model is a function ``model_fn(images, is_training, num_classes, config) -> logits``:
``images`` float32 NHWC, ``is_training`` a Python bool (batch norm from the batch, with moving-average
updates, or from the moving statistics), ``config`` any object with ``wrn_depth``, ``wrn_width``,
``dropout`` and ``data_format``. Dropout follows ``is_training`` unless ``use_dropout`` says otherwise:
batch-norm re-estimation runs batch norm in training mode with dropout off, as the authors do. Its variables live under
``tf.variable_scope("model", reuse=tf.AUTO_REUSE)``, so every call in one graph (training,
evaluation, the optimizer's Langevin loop) shares the same weights.
"""
from tfcompat import tf

from models import layers
from models.allcnn import allcnn
from models.lenet import lenet
from models.wrn import wrn

MODEL_NAMES = ("wrn", "allcnn", "lenet")
_BUILDERS = {"wrn": wrn, "allcnn": allcnn, "lenet": lenet}


def get_model(name):
    """Return the ``model_fn`` of model ``name``; a ValueError listing the known names otherwise."""
    if name not in _BUILDERS:
        raise ValueError("unknown model %r; known models: %s" % (name, ", ".join(MODEL_NAMES)))
    build = _BUILDERS[name]

    def model_fn(images, is_training, num_classes, config, use_dropout=None):
        """Return float32 logits [batch, num_classes] of the model on NHWC ``images``."""
        with tf.variable_scope("model", reuse=tf.AUTO_REUSE):
            return build(layers.to_data_format(images, config.data_format), is_training,
                         is_training if use_dropout is None else use_dropout, num_classes, config)

    return model_fn

"""The fully connected MNIST network of the Entropy-SGD paper, ``mnistfc``: 784-1024-1024-10.

Layer list from the authors' code, ucla-vision/entropy-sgd, python/models.py ``mnistfc``:
flatten-dropout(0.2), linear(1024)-BN-ReLU-dropout(0.5), linear(1024)-BN-ReLU-dropout(0.5),
linear(classes). Both rates are fixed by the authors (``opt['d'] = 0.5``); config.dropout is the WRN's.

As in models/lenet.py, the layers followed by batch norm have no bias (batch norm's shift replaces it,
so the function is the same), and the image is flattened in NHWC order whatever the data format.
"""
from tfcompat import tf

from models import layers

HIDDEN = (1024, 1024)
INPUT_DROPOUT, HIDDEN_DROPOUT = 0.2, 0.5


def mnistfc(images, is_training, dropout_key, num_classes, config):
    """Return the logits [batch, num_classes] of the authors' ``mnistfc`` for ``images`` in
    ``config.data_format`` (``dropout_key``: see layers.dropout)."""
    x = layers.dropout(layers.flatten(images, config.data_format), INPUT_DROPOUT, dropout_key, "input")
    for i, units in enumerate(HIDDEN):
        name = "fc%d" % i
        x = layers.dense(x, units, False, name)
        x = tf.nn.relu(layers.batch_norm(x, is_training, config.data_format, name + "/bn"))
        x = layers.dropout(x, HIDDEN_DROPOUT, dropout_key, name)
    return layers.dense(x, num_classes, True, "fc%d" % len(HIDDEN))

"""LeNet with batch normalisation, the MNIST convolutional network of the Entropy-SGD paper.

Layer list from the Entropy-SGD authors' code, ucla-vision/entropy-sgd, python/models.py
``mnistconv``: conv5x5(20)-BN-ReLU-maxpool3-dropout, conv5x5(50)-BN-ReLU-maxpool2-dropout,
linear(500)-BN-ReLU-dropout, linear(classes), dropout 0.5 throughout. On 28x28 images the feature
map before the first linear layer is 50 x 2 x 2. (Their older models.lua puts batch norm after the
pooling and none on the linear layer; we follow the PyTorch version, as for the optimizer.)

Differences from their code, without effect on the function computed: layers followed by batch
norm have no bias, and the feature map is flattened in NHWC order (a fixed permutation of the
first linear layer's rows) whatever the data format.
"""
from tfcompat import tf

from models import layers

C1, C2, C3 = 20, 50, 500
DROPOUT = 0.5  # fixed by the authors (opt['d'] = 0.5); config.dropout is the WRN's


def _conv_stage(x, out_channels, pool, is_training, dropout_key, fmt, name):
    """Return dropout(maxpool(ReLU(BN(conv5x5(x))))), the authors' ``convbn`` unit."""
    with tf.variable_scope(name):
        x = layers.conv2d(x, out_channels, 5, 1, 0, fmt, layers.torch_uniform(), "conv")
        x = tf.nn.relu(layers.batch_norm(x, is_training, fmt, "bn"))
    return layers.dropout(layers.max_pool(x, pool, fmt), DROPOUT, dropout_key, name)


def lenet(images, is_training, dropout_key, num_classes, config):
    """Return the logits [batch, num_classes] of the authors' ``mnistconv`` for ``images`` in
    ``config.data_format`` (``dropout_key``: see layers.dropout)."""
    fmt = config.data_format
    x = _conv_stage(images, C1, 3, is_training, dropout_key, fmt, "stage0")
    x = _conv_stage(x, C2, 2, is_training, dropout_key, fmt, "stage1")
    x = layers.dense(layers.flatten(x, fmt), C3, False, "fc0")
    x = tf.nn.relu(layers.batch_norm(x, is_training, fmt, "fc0/bn"))
    x = layers.dropout(x, DROPOUT, dropout_key, "fc0")
    return layers.dense(x, num_classes, True, "fc1")

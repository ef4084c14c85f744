"""All-CNN-BN, the CIFAR-10 network of the Entropy-SGD paper (All-CNN-C of Springenberg et al. 2015
with batch normalisation after every convolution).

Layer list from the Entropy-SGD authors' code, ucla-vision/entropy-sgd, python/models.py ``allcnn``
(the same as ``cifarconv`` in their models.lua): widths 96 and 192, dropout 0.2 on the input and
0.5 after each stride-2 stage, no fully connected layer; the last 1x1 convolution gives one map per
class (batch-normalised and rectified, as theirs), averaged over the 8x8 grid. About 1.67 M weights.

Differences from their code, both without effect on the function computed: the convolutions have
no bias (each is followed by batch norm, whose offset absorbs it), and the final average pool is a
global mean, so other input sizes work too.
"""
from tfcompat import tf

from models import layers

C1, C2 = 96, 192
INPUT_DROPOUT = 0.2
DROPOUT = 0.5  # fixed by the authors (opt['d'] = 0.5); config.dropout is the WRN's

# (out_channels, kernel, stride, padding) per conv-BN-ReLU; None marks a dropout of DROPOUT.
_LAYERS = (
    (C1, 3, 1, 1), (C1, 3, 1, 1), (C1, 3, 2, 1), None,
    (C2, 3, 1, 1), (C2, 3, 1, 1), (C2, 3, 2, 1), None,
    (C2, 3, 1, 1), (C2, 3, 1, 1),
)


def _conv_bn_relu(x, out_channels, kernel, stride, padding, is_training, fmt, name):
    """Return ReLU(BN(conv(x))), the authors' ``convbn`` unit."""
    with tf.variable_scope(name):
        x = layers.conv2d(x, out_channels, kernel, stride, padding, fmt, layers.torch_uniform(), "conv")
        return tf.nn.relu(layers.batch_norm(x, is_training, fmt, "bn"))


def allcnn(images, is_training, dropout_key, num_classes, config):
    """Return the logits [batch, num_classes] of All-CNN-BN for ``images`` in ``config.data_format``
    (``dropout_key``: see layers.dropout)."""
    fmt = config.data_format
    x = layers.dropout(images, INPUT_DROPOUT, dropout_key, "input")
    conv_index = 0
    for spec in _LAYERS:
        if spec is None:  # named by the convolution it follows
            x = layers.dropout(x, DROPOUT, dropout_key, "conv%d" % (conv_index - 1))
        else:
            x = _conv_bn_relu(x, *spec, is_training, fmt, "conv%d" % conv_index)
            conv_index += 1
    x = _conv_bn_relu(x, num_classes, 1, 1, 0, is_training, fmt, "conv%d" % conv_index)
    return layers.global_avg_pool(x, fmt)

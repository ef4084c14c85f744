"""Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016, arXiv:1605.07146).

Follows the authors' Torch code (szagoruyko/wide-residual-networks, models/wide-resnet.lua):
a 3x3 convolution to 16 channels, three groups of (d-4)/6 pre-activation basic blocks with
16k, 32k and 64k channels and strides 1, 2, 2, then BN-ReLU, global average pooling and a
linear layer. Convolutions have no bias and start from He-normal with fan_out (their MSRinit,
std = sqrt(2 / (3*3*out_channels))); the linear layer keeps Torch's default weights and a zero bias.
WRN-28-10 has 36,479,194 trainable parameters for 10 classes.
"""
from tfcompat import tf

from models import layers

_GROUP_STRIDES = (1, 2, 2)


def blocks_per_group(depth):
    """Return n = (depth - 4) / 6, the number of blocks per group; depth must be 6n + 4."""
    if depth < 10 or (depth - 4) % 6:
        raise ValueError("WRN depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...), got %r" % depth)
    return (depth - 4) // 6


def _block(x, out_channels, stride, is_training, dropout_key, config, name):
    """Return one pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3 plus shortcut.

    Where the shape changes the shortcut is a 1x1 projection of the pre-activated input (as in
    the authors' code); otherwise it is the block's raw input.
    """
    fmt = config.data_format
    in_channels = x.shape.as_list()[layers.channel_axis(fmt)]
    with tf.variable_scope(name):
        preact = tf.nn.relu(layers.batch_norm(x, is_training, fmt, "bn0"))
        y = layers.conv2d(preact, out_channels, 3, stride, 1, fmt, layers.he_normal_fan_out(), "conv0")
        y = tf.nn.relu(layers.batch_norm(y, is_training, fmt, "bn1"))
        y = layers.dropout(y, config.dropout, dropout_key, name)
        y = layers.conv2d(y, out_channels, 3, 1, 1, fmt, layers.he_normal_fan_out(), "conv1")
        if in_channels == out_channels and stride == 1:
            return y + x
        return y + layers.conv2d(preact, out_channels, 1, stride, 0, fmt, layers.he_normal_fan_out(),
                                 "shortcut")


def wrn(images, is_training, dropout_key, num_classes, config):
    """Return the logits [batch, num_classes] of WRN-``config.wrn_depth``-``config.wrn_width``.

    ``images`` are already in ``config.data_format``; dropout ``config.dropout`` sits between the
    two convolutions of every block (0 turns it off; ``dropout_key``: see layers.dropout).
    """
    fmt = config.data_format
    n = blocks_per_group(config.wrn_depth)
    widths = [c * config.wrn_width for c in (16, 32, 64)]
    x = layers.conv2d(images, 16, 3, 1, 1, fmt, layers.he_normal_fan_out(), "conv0")
    for g, (width, stride) in enumerate(zip(widths, _GROUP_STRIDES)):
        for b in range(n):
            x = _block(x, width, stride if b == 0 else 1, is_training, dropout_key, config,
                       "group%d/block%d" % (g, b))
    x = tf.nn.relu(layers.batch_norm(x, is_training, fmt, "bn"))
    return layers.dense(layers.global_avg_pool(x, fmt), num_classes, True, "fc")

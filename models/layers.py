"""The layers the model families share, in plain ``tf.nn`` ops with ``tf.get_variable``.

Every layer opens its own ``tf.variable_scope(name)``, so a model built twice under a reusing
scope finds the same variables. Convolution kernels are always HWIO and batch-norm parameters
per channel, whatever the data format, so NHWC and NCHW builds of one model share weights.
Weight decay is not added here: it belongs to the optimizer.

Mixed precision: a layer computes in the dtype of its input (float32, bfloat16 or float16), but
every variable is float32, whatever that dtype (the master weights the optimizer updates, and the
only ones a Saver sees). Convolution and linear weights are cast to the input's dtype where they are
used, so their gradients come back float32 through the cast; batch norm keeps its parameters and
statistics float32, as fused_batch_norm takes them with a half-precision input.

Dropout draws its masks with stateless random ops from a key it is given (see ``dropout``), never from
TensorFlow's stateful random streams, which restart in every process.
"""
import zlib

from tfcompat import tf

DATA_FORMATS = ("NHWC", "NCHW")
PRECISIONS = ("fp32", "bf16", "fp16")
_COMPUTE_DTYPES = dict(zip(PRECISIONS, (tf.float32, tf.bfloat16, tf.float16)))

# Torch's batch norm (the WRN and Entropy-SGD authors' code): running = 0.9 running + 0.1 batch,
# with the unbiased batch variance, which is what fused_batch_norm returns in training mode.
BN_DECAY = 0.9
# Torch uses 1e-5; fused_batch_norm raises anything smaller to cuDNN's floor of 1.001e-5.
BN_EPSILON = 1.001e-5


def he_normal_fan_out():
    """Return N(0, 2 / (k*k*out_channels)), the WRN authors' MSRinit (models/utils.lua) for convolutions."""
    return tf.variance_scaling_initializer(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def torch_uniform():
    """Return U(-1/sqrt(fan_in), 1/sqrt(fan_in)), Torch's default for convolution and linear weights.

    The Entropy-SGD authors' models and the WRN authors' final linear layer keep this default.
    """
    return tf.variance_scaling_initializer(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def compute_dtype(precision):
    """Return the dtype a model computes in at ``precision`` (one of ``PRECISIONS``)."""
    if precision not in _COMPUTE_DTYPES:
        raise ValueError("precision must be one of %s, got %r" % (", ".join(PRECISIONS), precision))
    return _COMPUTE_DTYPES[precision]


def _weight(name, shape, initializer, dtype):
    """Return the float32 variable ``name`` cast to ``dtype``, the dtype of the layer's input."""
    weight = tf.get_variable(name, shape, initializer=initializer)
    # float32 uses the variable itself, so an fp32 build is the graph it always was (no Cast ops).
    return weight if dtype == tf.float32 else tf.cast(weight, dtype)


def channel_axis(data_format):
    """Return the index of the channel dimension of a 4-D tensor in ``data_format``."""
    return 3 if data_format == "NHWC" else 1


def to_data_format(images, data_format):
    """Return NHWC ``images`` in ``data_format`` (one transpose for NCHW), checking the name."""
    if data_format not in DATA_FORMATS:
        raise ValueError("data_format must be one of %s, got %r" % (", ".join(DATA_FORMATS), data_format))
    if data_format == "NCHW":
        return tf.transpose(images, [0, 3, 1, 2])
    return images


def conv2d(x, out_channels, kernel_size, stride, padding, data_format, initializer, name):
    """Return a bias-free 2-D convolution of ``x`` with ``padding`` zeros on every side.

    Padding is explicit (Torch's semantics) rather than "SAME": for a stride-2 3x3 convolution
    "SAME" pads only the bottom/right and so samples a different grid from the authors' pad 1.
    No bias: the WRN authors remove them (DisableBias), and in All-CNN and LeNet every convolution
    feeds a batch norm, whose offset makes a bias redundant.
    """
    axis = channel_axis(data_format)
    in_channels = x.shape.as_list()[axis]
    with tf.variable_scope(name):
        kernel = _weight("kernel", [kernel_size, kernel_size, in_channels, out_channels], initializer, x.dtype)
    if data_format == "NHWC":
        strides, pads = [1, stride, stride, 1], [[0, 0], [padding, padding], [padding, padding], [0, 0]]
    else:
        strides, pads = [1, 1, stride, stride], [[0, 0], [0, 0], [padding, padding], [padding, padding]]
    return tf.nn.conv2d(x, kernel, strides=strides, padding=pads if padding else "VALID",
                        data_format=data_format)


def dense(x, units, use_bias, name):
    """Return ``x @ W (+ b)`` for a [batch, features] ``x``; W starts as Torch's default, b at zero."""
    with tf.variable_scope(name):
        y = tf.matmul(x, _weight("weights", [x.shape.as_list()[1], units], torch_uniform(), x.dtype))
        if use_bias:
            y += _weight("bias", [units], tf.zeros_initializer(), x.dtype)
    return y


def batch_norm(x, is_training, data_format, name):
    """Return batch-normalised ``x`` (4-D in ``data_format``, or 2-D [batch, features]).

    Training mode normalises with the batch statistics and adds the moving-average updates to
    ``tf.GraphKeys.UPDATE_OPS`` (the caller decides when they run; inside the optimizer's
    while_loop they are ops of the loop body). Evaluation mode normalises with the moving
    statistics and changes nothing. The moving mean and variance are non-trainable variables,
    so the optimizer leaves them alone and a Saver keeps them. For a bfloat16 or float16 ``x``,
    gamma, beta, the statistics and their updates stay float32 (fused_batch_norm computes the batch
    statistics in float32 and returns them so); only ``y`` has ``x``'s dtype.
    """
    flat = x.shape.ndims == 2
    if flat:  # fused_batch_norm wants 4-D: treat features as channels of a 1x1 image
        x, data_format = x[:, None, None, :], "NHWC"
    channels = x.shape.as_list()[channel_axis(data_format)]
    with tf.variable_scope(name):
        gamma = tf.get_variable("gamma", [channels], initializer=tf.ones_initializer())
        beta = tf.get_variable("beta", [channels], initializer=tf.zeros_initializer())
        moving_mean = tf.get_variable("moving_mean", [channels], initializer=tf.zeros_initializer(),
                                      trainable=False)
        moving_variance = tf.get_variable("moving_variance", [channels], initializer=tf.ones_initializer(),
                                          trainable=False)
    if is_training:
        y, mean, variance = tf.nn.fused_batch_norm(
            x, gamma, beta, epsilon=BN_EPSILON, data_format=data_format, is_training=True)
        for moving, batch in ((moving_mean, mean), (moving_variance, variance)):
            update = tf.assign_sub(moving, (1.0 - BN_DECAY) * (moving - batch))
            tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, update)
    else:
        y, _, _ = tf.nn.fused_batch_norm(
            x, gamma, beta, mean=moving_mean, variance=moving_variance, epsilon=BN_EPSILON,
            data_format=data_format, is_training=False)
    return y[:, 0, 0, :] if flat else y


# The key a model is built with when asked for dropout without one: its first dropout layer with a rate > 0
# refuses to build (a model without dropout, such as WRN at rate 0, needs no key).
MISSING_KEY = object()


def dropout(x, rate, key, name):
    """Return ``x`` with a fraction ``rate`` of its entries zeroed and the others scaled by 1 / (1 - rate);
    ``x`` itself when ``key`` is None (dropout off) or ``rate`` is 0.

    ``key`` (int, shape [2]): the stateless random key of the batch (models/__init__.py). The mask is drawn
    from it with ``name``, unique within the model, folded in as its CRC-32 (stable across processes,
    unlike Python's ``hash``): a function of the batch and the layer alone, so a resumed run draws the masks
    an uninterrupted one would. ``MISSING_KEY`` raises a ValueError.
    """
    if key is None or rate == 0:
        return x
    if key is MISSING_KEY:
        raise ValueError("dropout layer %r needs a stateless key: pass dropout_key= (int [2]) to the model, "
                         "or use_dropout=False" % name)
    layer_key = tf.random.experimental.stateless_fold_in(key, tf.constant(zlib.crc32(name.encode()), tf.int64))
    # A plain op under --xla too, as the stateful dropout was: XLA's CPU kernel for the draw is several times
    # slower than TensorFlow's (see EntropySGD._normal).
    with tf.xla.experimental.jit_scope(compile_ops=False):
        return tf.nn.experimental.stateless_dropout(x, rate, seed=layer_key)


def max_pool(x, size, data_format):
    """Return ``size`` x ``size`` max pooling with stride ``size`` and no padding (Torch's default)."""
    return tf.nn.max_pool2d(x, ksize=size, strides=size, padding="VALID", data_format=data_format)


def global_avg_pool(x, data_format):
    """Return the spatial mean of every channel, [batch, channels]."""
    return tf.reduce_mean(x, axis=[1, 2] if data_format == "NHWC" else [2, 3])


def flatten(x, data_format):
    """Return [batch, H*W*C] in NHWC order whatever ``data_format``, so one weight matrix fits both."""
    if data_format == "NCHW":
        x = tf.transpose(x, [0, 2, 3, 1])
    _, height, width, channels = x.shape.as_list()
    return tf.reshape(x, [-1, height * width * channels])

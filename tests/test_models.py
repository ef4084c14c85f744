"""Tests of models/: shapes, exact parameter counts, weight sharing, batch norm against NumPy,
NHWC vs NCHW, building inside a while_loop, keyed (stateless) dropout, and that every model learns a
fixed batch."""
import types

import numpy as np
import pytest

from data.pipeline import model_key
from models import MODEL_NAMES, get_model, layers
from tfcompat import tf

# Small enough to run in a test; the image shape each family is meant for.
SMALL = {
    "wrn": ((32, 32, 3), dict(wrn_depth=10, wrn_width=1)),
    "allcnn": ((32, 32, 3), {}),
    "lenet": ((28, 28, 1), {}),
    "mnistfc": ((28, 28, 1), {}),
}


def key(position=0):
    """A dropout key, as the training stream gives each batch (data.pipeline.model_key)."""
    return model_key(5, position)


def make_config(data_format="NHWC", wrn_depth=10, wrn_width=1, dropout=0.0, precision="fp32"):
    """Return the attributes a model reads, as train.py's settings object would hold them."""
    return types.SimpleNamespace(wrn_depth=wrn_depth, wrn_width=wrn_width, dropout=dropout,
                                 data_format=data_format, precision=precision)


def count_trainable():
    """Return the number of trainable scalars in the default graph."""
    return sum(int(np.prod(v.shape.as_list())) for v in tf.trainable_variables())


def global_values(sess, names):
    """Return {name: value} of the global variables whose names contain one of ``names``."""
    found = {v.name: v for v in tf.global_variables() if any(n in v.name for n in names)}
    return sess.run(found)


# ---------------------------------------------------------------- registry, shapes, counts

def test_model_names_and_unknown_name():
    assert MODEL_NAMES == ("wrn", "allcnn", "lenet", "mnistfc")
    with pytest.raises(ValueError) as err:
        get_model("resnet50")
    for name in MODEL_NAMES:
        assert name in str(err.value)


def test_bad_data_format_and_depth_raise():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match="NCHW"):
            get_model("lenet")(tf.zeros([1, 28, 28, 1]), False, 10, make_config(data_format="NWHC"))
        with pytest.raises(ValueError, match="6n"):
            get_model("wrn")(tf.zeros([1, 32, 32, 3]), False, 10, make_config(wrn_depth=12))


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("classes", [10, 100])
def test_logits_shape_and_dtype(name, classes):
    shape, overrides = SMALL[name]
    images = np.random.RandomState(0).randn(2, *shape).astype(np.float32)
    with tf.Graph().as_default():
        model = get_model(name)
        logits = [model(tf.constant(images), training, classes, make_config(**overrides), dropout_key=key())
                  for training in (True, False)]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            values = sess.run(logits)
    for value in values:
        assert value.shape == (2, classes) and value.dtype == np.float32
        assert np.all(np.isfinite(value))


def keyed_logits(name, images, positions):
    """Logits of model ``name`` (WRN with dropout 0.3) on ``images`` in a graph of their own, seeded so that
    its initial weights are those of every such graph: in training mode for the key of each of
    ``positions``, then in evaluation mode for each."""
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        model, config = get_model(name), make_config(**dict(SMALL[name][1], dropout=0.3))
        logits = [model(tf.constant(images), training, 10, config, dropout_key=key(p))
                  for training in (True, False) for p in positions]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            return sess.run(logits)


@pytest.mark.bitexact
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_dropout_masks_are_a_function_of_the_key(name):
    """Across graphs the same key gives the same training-mode logits, another key others; evaluation mode
    has no dropout, whatever the key."""
    images = np.random.RandomState(10).randn(2, *SMALL[name][0]).astype(np.float32)
    first = keyed_logits(name, images, [0, 1])
    again = keyed_logits(name, images, [0, 1])
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])
    np.testing.assert_array_equal(first[2], first[3])


def test_dropout_zeroes_the_rate_and_scales_the_rest():
    n, rate = 200000, 0.3
    with tf.Graph().as_default():
        ones = tf.ones([n])
        masks = [layers.dropout(ones, rate, key(0), "a"), layers.dropout(ones, rate, key(0), "b"),
                 layers.dropout(ones, rate, None, "a"), layers.dropout(ones, 0.0, key(0), "a")]
        with tf.Session() as sess:
            a, b, off, zero_rate = sess.run(masks)
    kept = a != 0
    assert kept.mean() == pytest.approx(1 - rate, abs=0.005)
    np.testing.assert_array_equal(a[kept], np.float32(1.0) / np.float32(1 - rate))
    assert 0.45 < np.mean(kept == (b != 0)) < 0.65  # another layer's name, another mask (0.58 if independent)
    np.testing.assert_array_equal(off, 1.0)
    np.testing.assert_array_equal(zero_rate, 1.0)


def test_dropout_without_a_key_is_an_error_only_where_there_is_dropout():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match="stateless key"):
            get_model("lenet")(tf.zeros([1, 28, 28, 1]), True, 10, make_config())
        with pytest.raises(ValueError, match="stateless key"):
            get_model("wrn")(tf.zeros([1, 32, 32, 3]), True, 10, make_config(dropout=0.3))
        get_model("wrn")(tf.zeros([1, 32, 32, 3]), True, 10, make_config(dropout=0.0))  # no dropout: no key
        get_model("lenet")(tf.zeros([1, 28, 28, 1]), True, 10, make_config(), use_dropout=False)
        get_model("lenet")(tf.zeros([1, 28, 28, 1]), False, 10, make_config())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_use_dropout_false_keeps_batch_norm_in_training_mode_without_dropout(name):
    """The batch-norm re-estimation pass: batch statistics (and their updates), no dropout masks."""
    shape = (8,) + SMALL[name][0]
    images = np.random.RandomState(11).randn(*shape).astype(np.float32)
    with tf.Graph().as_default():
        model = get_model(name)
        config = make_config(dropout=0.3)
        known = len(tf.get_collection(tf.GraphKeys.UPDATE_OPS))
        no_dropout = model(tf.constant(images), True, 10, config, use_dropout=False)
        assert len(tf.get_collection(tf.GraphKeys.UPDATE_OPS)) > known  # batch norm still in training mode
        evaluate = model(tf.constant(images), False, 10, config)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            first, again, moving = sess.run(no_dropout), sess.run(no_dropout), sess.run(evaluate)
    np.testing.assert_allclose(first, again, rtol=1e-5, atol=1e-6)  # no random masks (they zero units)
    assert not np.allclose(first, moving)  # normalised by the batch, not by the initial moving statistics


def wrn_param_count(depth, width, classes, channels=3):
    """WRN-d-k trainable parameters by hand: bias-free convs, BN gamma+beta, final linear layer."""
    n = (depth - 4) // 6
    count = 3 * 3 * channels * 16                      # stem conv
    in_ch = 16
    for out_ch in (16 * width, 32 * width, 64 * width):
        for b in range(n):
            block_in = in_ch if b == 0 else out_ch
            count += 2 * block_in + 9 * block_in * out_ch  # bn0, conv0
            count += 2 * out_ch + 9 * out_ch * out_ch      # bn1, conv1
            if block_in != out_ch:
                count += block_in * out_ch                 # 1x1 projection shortcut
        in_ch = out_ch
    return count + 2 * in_ch + in_ch * classes + classes  # final bn, fc


def test_wrn_28_10_parameter_count():
    for classes, published in ((10, 36.48e6), (100, 36.54e6)):
        with tf.Graph().as_default():
            logits = get_model("wrn")(tf.placeholder(tf.float32, [None, 32, 32, 3]), True, classes,
                                      make_config(wrn_depth=28, wrn_width=10))
            assert logits.shape.as_list() == [None, classes]
            count = count_trainable()
        assert count == wrn_param_count(28, 10, classes)
        assert abs(count - published) < 0.005e6  # the paper's figures, to their last digit
    assert wrn_param_count(28, 10, 10) == 36_479_194
    assert abs(wrn_param_count(28, 10, 10) - 36.5e6) / 36.5e6 < 0.005


def test_wrn_small_parameter_count():
    with tf.Graph().as_default():
        get_model("wrn")(tf.placeholder(tf.float32, [None, 32, 32, 3]), True, 10,
                         make_config(wrn_depth=16, wrn_width=2))
        assert count_trainable() == wrn_param_count(16, 2, 10)


def test_allcnn_parameter_count():
    c1, c2 = 96, 192
    convs = [(3, c1, 3), (c1, c1, 3), (c1, c1, 3), (c1, c2, 3), (c2, c2, 3), (c2, c2, 3),
             (c2, c2, 3), (c2, c2, 3), (c2, 10, 1)]
    expected = sum(k * k * ci * co + 2 * co for ci, co, k in convs)  # bias-free conv + BN
    with tf.Graph().as_default():
        get_model("allcnn")(tf.placeholder(tf.float32, [None, 32, 32, 3]), True, 10, make_config(),
                            dropout_key=key())
        assert count_trainable() == expected == 1_665_908


def test_lenet_parameter_count():
    expected = (25 * 1 * 20 + 2 * 20) + (25 * 20 * 50 + 2 * 50) + (200 * 500 + 2 * 500) + (500 * 10 + 10)
    with tf.Graph().as_default():
        get_model("lenet")(tf.placeholder(tf.float32, [None, 28, 28, 1]), True, 10, make_config(),
                           dropout_key=key())
        assert count_trainable() == expected == 131_650


def test_mnistfc_parameter_count():
    expected = (784 * 1024 + 2 * 1024) + (1024 * 1024 + 2 * 1024) + (1024 * 10 + 10)
    with tf.Graph().as_default():
        get_model("mnistfc")(tf.placeholder(tf.float32, [None, 28, 28, 1]), True, 10, make_config(),
                             dropout_key=key())
        assert count_trainable() == expected == 1_865_738


def test_mnistfc_matches_numpy_in_evaluation_mode():
    """Evaluation mode: flatten, (linear, batch norm from the moving statistics, ReLU) twice, linear; the
    variables set to random values (statistics included) so that every layer is checked."""
    rng = np.random.RandomState(12)
    images = rng.randn(3, 28, 28, 1).astype(np.float32)
    with tf.Graph().as_default():
        logits = get_model("mnistfc")(tf.constant(images), False, 10, make_config())
        variables = {v.op.name.split("model/", 1)[1]: v for v in tf.global_variables()}
        values = {name: (rng.rand(*v.shape.as_list()) + 0.5 if "variance" in name
                         else rng.randn(*v.shape.as_list()) * 0.1).astype(np.float32)
                  for name, v in variables.items()}
        with tf.Session() as sess:
            for name, v in variables.items():
                v.load(values[name], sess)
            got = sess.run(logits)
    x = images.reshape(3, -1)
    for i in range(2):
        mean, variance, gamma, beta = (values["fc%d/bn/%s" % (i, part)]
                                       for part in ("moving_mean", "moving_variance", "gamma", "beta"))
        x = x @ values["fc%d/weights" % i]
        x = np.maximum((x - mean) / np.sqrt(variance + layers.BN_EPSILON) * gamma + beta, 0)
    expected = x @ values["fc2/weights"] + values["fc2/bias"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- sharing and batch norm

def test_building_twice_shares_variables():
    images = np.random.RandomState(1).randn(3, 32, 32, 3).astype(np.float32)
    with tf.Graph().as_default():
        model = get_model("wrn")
        train_logits = model(tf.constant(images), True, 10, make_config())
        names = [v.name for v in tf.global_variables()]
        first = model(tf.constant(images), False, 10, make_config())
        second = model(tf.constant(images), False, 10, make_config())
        assert [v.name for v in tf.global_variables()] == names
        assert all(name.startswith("model/") for name in names)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            a, b, _ = sess.run([first, second, train_logits])
    # Close, not equal: a GPU's convolutions need not sum in one order. Unshared weights would differ wholly.
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def numpy_bn(x, mean, var, gamma, beta):
    return (x - mean) / np.sqrt(var + layers.BN_EPSILON) * gamma + beta


@pytest.mark.parametrize("shape", [(6, 4, 5, 3), (7, 3)])
def test_batch_norm_training_matches_numpy(shape):
    rng = np.random.RandomState(2)
    x = (rng.randn(*shape) * 3 + 1).astype(np.float32)
    gamma, beta = rng.rand(3).astype(np.float32) + 0.5, rng.randn(3).astype(np.float32)
    axes = tuple(range(x.ndim - 1))
    with tf.Graph().as_default():
        y = layers.batch_norm(tf.constant(x), True, "NHWC", "bn")
        updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        assert len(updates) == 2
        with tf.variable_scope("bn", reuse=True):
            gamma_v, beta_v = tf.get_variable("gamma"), tf.get_variable("beta")
            moving = [tf.get_variable("moving_mean"), tf.get_variable("moving_variance")]
        assert not set(moving) & set(tf.trainable_variables())
        assert set(moving) <= set(tf.global_variables())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            gamma_v.load(gamma, sess)
            beta_v.load(beta, sess)
            out = sess.run(y)
            before = sess.run(moving)
            sess.run(updates)
            mean_after, var_after = sess.run(moving)
    np.testing.assert_allclose(out, numpy_bn(x, x.mean(axes), x.var(axes), gamma, beta), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(before[0], 0.0)
    np.testing.assert_array_equal(before[1], 1.0)
    # Torch's rule: running = 0.9 running + 0.1 batch, with the unbiased batch variance.
    np.testing.assert_allclose(mean_after, 0.1 * x.mean(axes), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var_after, 0.9 + 0.1 * x.var(axes, ddof=1), rtol=1e-5)


def test_batch_norm_eval_uses_moving_statistics():
    rng = np.random.RandomState(3)
    x = rng.randn(5, 4, 4, 3).astype(np.float32)
    mean, var = rng.randn(3).astype(np.float32), rng.rand(3).astype(np.float32) + 0.5
    with tf.Graph().as_default():
        y = layers.batch_norm(tf.constant(x), False, "NHWC", "bn")
        assert not tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        with tf.variable_scope("bn", reuse=True):
            moving = [tf.get_variable("moving_mean"), tf.get_variable("moving_variance")]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            moving[0].load(mean, sess)
            moving[1].load(var, sess)
            out, out_again = sess.run(y), sess.run(y)
            after = sess.run(moving)
    np.testing.assert_allclose(out, numpy_bn(x, mean, var, 1.0, 0.0), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(out, out_again)
    np.testing.assert_array_equal(after[0], mean)
    np.testing.assert_array_equal(after[1], var)


def numpy_conv(x, kernel, stride, pad):
    """Reference NHWC convolution with ``pad`` zeros on every side (Torch's semantics)."""
    x = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    k = kernel.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("bhwcij,ijco->bhwo", windows, kernel)


def test_strided_conv_pads_both_sides_like_torch():
    rng = np.random.RandomState(4)
    x = rng.randn(2, 8, 8, 3).astype(np.float32)
    with tf.Graph().as_default():
        y = layers.conv2d(tf.constant(x), 4, 3, 2, 1, "NHWC", layers.he_normal_fan_out(), "conv")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            kernel = sess.run(tf.global_variables()[0])
            out = sess.run(y)
    assert out.shape == (2, 4, 4, 4)
    np.testing.assert_allclose(out, numpy_conv(x, kernel, 2, 1), rtol=1e-4, atol=1e-4)


def test_training_mode_updates_moving_stats_and_eval_mode_uses_them():
    """LeNet's first BN sees conv1(images): its moving mean after one update is 0.1 x their mean."""
    rng = np.random.RandomState(5)
    images = rng.randn(4, 28, 28, 1).astype(np.float32)
    with tf.Graph().as_default():
        model = get_model("lenet")
        eval_logits = model(tf.constant(images), False, 10, make_config())
        assert not tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        model(tf.constant(images), True, 10, make_config(), dropout_key=key())
        updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        assert len(updates) == 6  # three BN layers, mean and variance each
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            kernel = global_values(sess, ["stage0/conv/kernel"])["model/stage0/conv/kernel:0"]
            logits_before = sess.run(eval_logits)
            stats_before = global_values(sess, ["moving_"])
            sess.run(eval_logits)
            assert all(np.array_equal(v, stats_before[k]) for k, v in global_values(sess, ["moving_"]).items())
            sess.run(updates)
            stats_after = global_values(sess, ["moving_"])
            logits_after = sess.run(eval_logits)
    conv = numpy_conv(images, kernel, 1, 0)
    np.testing.assert_allclose(stats_after["model/stage0/bn/moving_mean:0"], 0.1 * conv.mean((0, 1, 2)),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats_after["model/stage0/bn/moving_variance:0"],
                               0.9 + 0.1 * conv.var((0, 1, 2), ddof=1), rtol=1e-4)
    assert all(not np.array_equal(stats_after[k], stats_before[k]) for k in stats_before)
    assert not np.allclose(logits_before, logits_after)  # eval mode reads the moving statistics


def test_training_mode_builds_inside_while_loop():
    """The optimizer builds the model in its Langevin while_loop: BN updates run once per iteration."""
    images = np.random.RandomState(6).randn(4, 28, 28, 1).astype(np.float32)
    steps = 3
    with tf.Graph().as_default():
        model = get_model("lenet")
        model(tf.constant(images), True, 10, make_config(), dropout_key=key())  # the variables exist before
        outside = len(tf.get_collection(tf.GraphKeys.UPDATE_OPS))

        def body(i, total):
            logits = model(tf.constant(images), True, 10, make_config(), dropout_key=key(i))
            loss = tf.reduce_mean(tf.square(logits))
            with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)[outside:]):
                return i + 1, total + loss

        _, total = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), tf.constant(0.0)))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            kernel = global_values(sess, ["stage0/conv/kernel"])["model/stage0/conv/kernel:0"]
            assert np.isfinite(sess.run(total))
            moving_mean = global_values(sess, ["stage0/bn/moving_mean"])["model/stage0/bn/moving_mean:0"]
    batch_mean = numpy_conv(images, kernel, 1, 0).mean((0, 1, 2))
    np.testing.assert_allclose(moving_mean, (1 - 0.9 ** steps) * batch_mean, rtol=1e-4, atol=1e-6)


def test_layers_agree_across_data_formats_on_cpu():
    """The CPU-runnable part of NCHW support: channel axes of BN, pooling, flatten, conv shapes."""
    x = np.random.RandomState(9).randn(3, 4, 5, 6).astype(np.float32)
    with tf.Graph().as_default(), tf.variable_scope("shared", reuse=tf.AUTO_REUSE):
        nhwc, nchw = tf.constant(x), layers.to_data_format(tf.constant(x), "NCHW")
        pairs = [(layers.batch_norm(nhwc, True, "NHWC", "bn"),
                  tf.transpose(layers.batch_norm(nchw, True, "NCHW", "bn"), [0, 2, 3, 1])),
                 (layers.global_avg_pool(nhwc, "NHWC"), layers.global_avg_pool(nchw, "NCHW")),
                 (layers.flatten(nhwc, "NHWC"), layers.flatten(nchw, "NCHW"))]
        conv_nhwc = layers.conv2d(nhwc, 7, 3, 2, 1, "NHWC", layers.he_normal_fan_out(), "conv")
        conv_nchw = layers.conv2d(nchw, 7, 3, 2, 1, "NCHW", layers.he_normal_fan_out(), "conv")
        assert conv_nhwc.shape.as_list() == [3, 2, 3, 7] and conv_nchw.shape.as_list() == [3, 7, 2, 3]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for a, b in sess.run(pairs):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_nhwc_and_nchw_give_the_same_logits():
    images = np.random.RandomState(7).randn(2, 28, 28, 1).astype(np.float32)
    for name in MODEL_NAMES:
        shape, overrides = SMALL[name]
        x = np.resize(images, (2,) + shape)
        with tf.Graph().as_default():
            model = get_model(name)
            nhwc = model(tf.constant(x), False, 10, make_config("NHWC", **overrides))
            names = [v.name for v in tf.global_variables()]
            nchw = model(tf.constant(x), False, 10, make_config("NCHW", **overrides))
            assert [v.name for v in tf.global_variables()] == names  # one set of weights for both
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                expected = sess.run(nhwc)
                try:
                    got = sess.run(nchw)
                except (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError) as err:
                    reason = next((line for line in str(err).splitlines() if "NHWC" in line), "")
                    pytest.skip("NCHW cannot run on this device (%s); the NCHW graph builds and shares "
                                "the NHWC weights; run on a GPU to compare the logits" % reason.strip())
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- every model learns

@pytest.mark.parametrize("name", MODEL_NAMES)
def test_sgd_drives_the_loss_down_on_a_fixed_batch(name):
    shape, overrides = SMALL[name]
    if name in ("wrn", "allcnn"):  # they accept smaller images, which run faster
        shape = {"wrn": (16, 16, 3), "allcnn": (8, 8, 3)}[name]
    rng = np.random.RandomState(8)
    images = rng.randn(16, *shape).astype(np.float32)
    labels = rng.randint(0, 10, size=16).astype(np.int32)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        step = tf.train.get_or_create_global_step()  # fresh dropout masks every step
        logits = get_model(name)(tf.constant(images), True, 10, make_config(**overrides), dropout_key=key(step))
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            train = tf.train.MomentumOptimizer(0.02, 0.9).minimize(loss, global_step=step)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            losses = [sess.run([loss, train])[0] for _ in range(40)]
    # Averages, because LeNet's and All-CNN's dropout make single training losses noisy.
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5]), losses

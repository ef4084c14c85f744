"""Speed features on the CPU: mixed precision (bf16, fp16 with loss scaling) and XLA, through the optimizer,
the training graph and train.py end to end. (Speed is measured by bench/gpu.py, not here.)"""
import json
import types

import numpy as np
import pytest

import train_fixtures as fx
from training.trace import traced_op_types
from config import config_train
from models import get_model
from optimizers import EntropySGD
from tfcompat import tf
from training import exits, graph, settings
from training.dataset import record_info

ESGD = ["-opt", "entropy-sgd", "-L", "2", "--set", "esgd_learning_rate=0.25"]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_entropy_sgd_learns_a_fixed_batch_with_float32_variables(precision):
    """LeNet on one fixed batch of the tiny dataset: 30 Entropy-SGD steps (L = 2) lower the loss; every
    variable, slot and the loss scale stay float32; fp16 runs with TF's dynamic loss scale."""
    images, labels = fx.tiny_split(64)
    config = types.SimpleNamespace(**{k: v for k, v in vars(config_train).items() if not k.startswith("_")})
    config.precision, config.data_format = precision, "NHWC"
    model_fn = get_model("lenet")
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        x = tf.constant((images.astype(np.float32) - 60.0) / 80.0)
        y = tf.constant(labels.astype(np.int32))

        def loss_fn():
            logits = model_fn(x, True, 10, config, use_dropout=False)
            assert logits.dtype == tf.float32
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))

        scale = tf.mixed_precision.DynamicLossScale() if precision == "fp16" else None
        loss = loss_fn()
        opt = EntropySGD(loss_fn, 0.5, L=2, gamma=0.03, langevin_lr=0.1, epsilon=0.0, loss_scale=scale)
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            step = opt.minimize(loss)
        # every float variable (weights, slots, the scale) is float32; the scale's step counter is int64
        assert {v.dtype.base_dtype for v in tf.global_variables() if v.dtype.is_floating} == {tf.float32}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            losses = [sess.run([step, opt.stats["inner_loss"]])[1] for _ in range(30)]
            skipped = sess.run(opt.stats["skipped_steps"]) if scale else 0
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3]), losses
    assert skipped < 5


def _graph_settings(data_dir, *flags):
    return settings.parse_settings(fx.TINY + ["--data-dir", str(data_dir)] + list(flags), config_train)


def test_xla_compiles_the_training_step(data_dir):
    """With --xla the model runs in XLA clusters (no plain Conv2D left in the step's trace); without, the
    model's ops run as TF ops and only the fused Langevin arithmetic is an XLA cluster."""
    record_dir = str(data_dir / "fashion-mnist")
    for xla in (False, True):
        s = _graph_settings(data_dir, *ESGD, *(["--xla"] if xla else []))
        with tf.Graph().as_default():
            g = graph.build(s, record_info(record_dir), record_dir)
            with tf.Session() as sess:
                sess.run(g.init)
                sess.run(g.train_init, {g.start_batch: 0})
                ops = set(traced_op_types(sess, g.train_op))
        assert "_XlaRun" in ops
        assert ("Conv2D" in ops) != xla


def test_xla_gives_the_weights_of_the_plain_graph(tmp_path, data_dir):
    """From the same start, 3 Entropy-SGD outer steps (L = 2, epsilon = 0) with and without XLA end at
    the same weights to float32 rounding: per variable, the two runs differ by far less than the
    distance the run moved the weights (XLA fuses and reorders float ops, so not bit for bit)."""
    start = fx.train_args(tmp_path, data_dir, *fx.EXACT, "-opt", "sgd", "--max-steps", "1", "-n", "start")
    assert fx.run_main(start) == exits.DONE
    args = fx.train_args(tmp_path, data_dir, *ESGD, *fx.EXACT, "--max-steps", "3",
                      "-r", str(tmp_path / "ckpt" / "start" / "model-1"))
    assert fx.run_main(args + ["-n", "plain"]) == exits.DONE
    assert fx.run_main(args + ["-n", "xla", "--xla"]) == exits.DONE
    initial = fx.checkpoint_values(str(tmp_path / "ckpt" / "start" / "model-1"))
    plain = fx.checkpoint_values(str(tmp_path / "ckpt" / "plain" / "model-3"))
    xla = fx.checkpoint_values(str(tmp_path / "ckpt" / "xla" / "model-3"))
    assert set(plain) == set(xla)
    weights = [k for k in initial if k.startswith("model/") and "moving" not in k]
    assert weights
    for name in weights:
        moved = np.linalg.norm(plain[name] - initial[name])
        assert moved > 0, name
        assert np.linalg.norm(xla[name] - plain[name]) <= 1e-3 * moved, name  # seen: <= 3e-5


@pytest.mark.parametrize("opt", ["entropy-sgd", "momentum"])
def test_train_py_bf16_xla_and_fp16_end_to_end(tmp_path, data_dir, opt):
    extra = ESGD if opt == "entropy-sgd" else ["-opt", opt]
    for precision, flags in (("bf16", ["--xla"]), ("fp16", [])):
        name = "%s-%s" % (opt, precision)
        args = fx.train_args(tmp_path, data_dir, *extra, "--precision", precision, "--max-steps", "3", "-n", name,
                          *flags)
        assert fx.run_main(args) == exits.DONE
        run = tmp_path / "ckpt" / name
        assert json.loads((run / "settings.json").read_text())["precision"] == precision
        values = fx.checkpoint_values(str(run / "model-3"))
        assert all(v.dtype in (np.float32, np.int64) for v in values.values())
        events = fx.scalar_events(str(tmp_path / "tb" / name / "train"))
        assert all(np.isfinite(v) for _, v in events["loss"])
        if precision == "fp16":
            assert {"loss_scale", "skipped_steps"} <= set(events)
            assert events["loss_scale"][-1][1] >= 1.0


def test_precision_must_match_on_resume(tmp_path, data_dir, capsys):
    args = fx.train_args(tmp_path, data_dir, "-opt", "sgd", "--max-steps", "1", "-n", "r")
    assert fx.run_main(args) == exits.DONE
    assert fx.run_main(args + ["-rl", "--precision", "fp16"]) == exits.FAILED
    assert "precision 'fp32' -> 'fp16'" in capsys.readouterr().err

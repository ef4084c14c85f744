"""Parallel training in one process on CPU devices: train.py -opt parle --replicas N, and -g N data parallelism."""
import json
import re

import numpy as np
import pytest

import evaluate
import train_fixtures as fx
from config import config_train
from tfcompat import tf
from training import devices, exits, graph, settings
from training.dataset import record_info
from training.trace import traced_ops

ESGD = ["-L", "2", "--set", "esgd_learning_rate=0.25"]
PARLE = ["-opt", "parle", "--set", "rho=0.5", "--set", "rho_scoping=0.5"] + ESGD


def test_parle_trains_evaluates_the_reference_and_logs_the_replicas(tmp_path, data_dir, capsys):
    args = fx.train_args(tmp_path, data_dir, *PARLE, "--replicas", "2", "--max-steps", "3", "-n", "p")
    assert fx.run_main(args) == exits.DONE
    err = capsys.readouterr().err
    assert "final test accuracy" in err
    values = fx.checkpoint_values(str(tmp_path / "ckpt" / "p" / "model-3"))
    reference = {k: v for k, v in values.items() if k.startswith("model/")}
    replicas = [{k: values["replica_%d/%s" % (a, k)] for k in reference} for a in range(2)]  # KeyError: missing
    assert reference
    # the reference is the replicas' mean, and they have moved apart (their own data)
    weights = [k for k in reference if k.endswith("kernel") or k.endswith("weights")]
    for k in weights:
        np.testing.assert_allclose(reference[k], (replicas[0][k] + replicas[1][k]) / 2, rtol=1e-5, atol=1e-6)
    assert max(np.abs(replicas[0][k] - replicas[1][k]).max() for k in weights) > 1e-4
    events = fx.scalar_events(str(tmp_path / "tb" / "p" / "train"))
    assert {"replica_distance", "rho", "gamma", "x_mu_norm"} <= set(events)
    np.testing.assert_allclose([v for _, v in events["rho"]], [0.5, 0.75, 1.125], rtol=1e-6)
    # each outer step reads L batches per replica: epochs count per replica
    np.testing.assert_allclose(events["effective_epoch"][-1][1], 3 * 2 * 8 / fx.TRAIN_SIZE, rtol=1e-6)
    # evaluate.py restores the reference (the model variables) from the same checkpoint
    final = [line for line in err.splitlines() if line.startswith("eval step 3")][0]
    assert evaluate.main([str(tmp_path / "ckpt" / "p"), "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert final.split("acc ")[1].split()[0] == out.split("accuracy ")[1].split()[0]


def test_parle_with_one_replica_is_entropy_sgd(tmp_path, data_dir):
    """From the same weights (-r), with one replica: the reference ends where Entropy-SGD's weights do
    (same stream, elastic term zero), to float32 rounding: XLA compiles each graph's fused Langevin
    arithmetic on its own and may order a product's operands differently (seen: 1 ulp in the weights)."""
    start = fx.train_args(tmp_path, data_dir, *fx.EXACT, "-opt", "sgd", "--max-steps", "1", "-n", "start")
    assert fx.run_main(start) == exits.DONE
    common = fx.train_args(tmp_path, data_dir, *fx.EXACT, *ESGD, "--max-steps", "3",
                        "-r", str(tmp_path / "ckpt" / "start" / "model-1"))
    assert fx.run_main(common + ["-opt", "entropy-sgd", "-n", "esgd"]) == exits.DONE
    assert fx.run_main(common + ["-opt", "parle", "--replicas", "1", "-n", "parle1"]) == exits.DONE
    esgd = fx.checkpoint_values(str(tmp_path / "ckpt" / "esgd" / "model-3"))
    parle = fx.checkpoint_values(str(tmp_path / "ckpt" / "parle1" / "model-3"))
    model = [k for k in parle if k.startswith("model/")]  # the reference (replica slots live elsewhere)
    assert model
    for k in model:
        # Relative to the variable's scale: a moving mean near 0 differs by more than its own rounding.
        np.testing.assert_allclose(parle[k], esgd[k], rtol=1e-5, atol=1e-5 * np.abs(esgd[k]).max(), err_msg=k)


@pytest.mark.bitexact
def test_parle_resumes_exactly(tmp_path, data_dir, capsys):
    args = fx.train_args(tmp_path, data_dir, *fx.EXACT, *PARLE, "--replicas", "2")
    assert fx.run_main(args + ["-n", "whole", "--max-steps", "4"]) == exits.DONE
    assert fx.run_main(args + ["-n", "split", "--max-steps", "2"]) == exits.DONE
    assert fx.run_main(args + ["-n", "split", "--max-steps", "4", "-rl"]) == exits.DONE
    whole = fx.checkpoint_values(str(tmp_path / "ckpt" / "whole" / "model-4"))
    split = fx.checkpoint_values(str(tmp_path / "ckpt" / "split" / "model-4"))
    assert set(whole) == set(split)
    for name in whole:
        np.testing.assert_array_equal(whole[name], split[name], err_msg=name)
    assert json.loads((tmp_path / "ckpt" / "split" / "settings.json").read_text())["replicas"] == 2


def test_data_parallel_towers_read_the_whole_batch(tmp_path, data_dir):
    """-g 2 with batch_size 4 per device reads 8 examples per batch: effective epochs count both towers."""
    common = fx.train_args(tmp_path, data_dir, *fx.EXACT, *ESGD, "-opt", "entropy-sgd", "--max-steps", "2")
    assert fx.run_main(common + ["-n", "g2", "-g", "2", "--set", "batch_size=4"]) == exits.DONE
    events = fx.scalar_events(str(tmp_path / "tb" / "g2" / "train"))
    np.testing.assert_allclose([v for _, v in events["effective_epoch"]],
                               [k * 2 * 8 / fx.TRAIN_SIZE for k in (1, 2)], rtol=1e-6)
    assert all(np.isfinite(v) for _, v in events["loss"])


def test_data_parallel_towers_run_on_their_devices(data_dir):
    """In a traced step of -g 2 (Entropy-SGD: the first inner step, then the Langevin loop), tower t's
    convolutions, matrix products and their gradients run on its device (``devices.local_devices``): CPU
    device t, or on a machine with one GPU that GPU for both (variable reads stay with the variables)."""
    record_dir = str(data_dir / "fashion-mnist")
    s = settings.parse_settings(fx.TINY + ["--data-dir", str(data_dir), "-g", "2", *ESGD, "-opt", "entropy-sgd"],
                                config_train)
    with tf.Graph().as_default():
        g = graph.build(s, record_info(record_dir), record_dir)
        with tf.Session(config=devices.session_config(g.num_devices)) as sess:
            sess.run(g.init)
            sess.run(g.train_init, {g.start_batch: 0})
            ran = traced_ops(sess, g.train_op)
    placed = {}  # (tower, in the Langevin loop) -> {devices that ran its convolutions / products}
    for name, _, device in ran:
        tower = re.search(r"tower_\d", name)
        if tower and name.endswith(("/Conv2D", "/MatMul", "/Conv2DBackpropFilter")):
            placed.setdefault((tower.group(), "langevin/" in name), set()).add(device.split("device:")[-1])
    expected = [d.lstrip("/").upper() for d in devices.local_devices(2)]  # "/cpu:1" -> "CPU:1"
    assert placed == {(f"tower_{t}", loop): {expected[t]} for t in (0, 1) for loop in (False, True)}, placed


def test_parallel_flag_errors(tmp_path, data_dir, capsys):
    for flags, message in ((["-g", "0"], "-g/gpus must be >= 1"), (["-opt", "parle", "-g", "2"], "parle places"),
                           (["-opt", "parle", "-L", "0"], "parle needs L >= 1"),
                           (["--replicas", "0"], "replicas must be >= 1")):
        assert fx.run_main(fx.train_args(tmp_path, data_dir, *flags)) == exits.BAD_FLAGS
        assert message in capsys.readouterr().err

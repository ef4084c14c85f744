"""evaluate.py --flatness on a tiny Entropy-SGD run made here: finite numbers, printed and in --json, the
checkpoint's bytes untouched, deterministic with --seed, the run's Langevin settings unless --set, a
training loss on the fixed batch checked against the test evaluation of the very same images, and a
filter-normalised Hessian that does not see a rescaling of filters feeding batch norm."""
import contextlib
import glob
import hashlib
import io
import json
import math
import os
import re
import shutil
import signal

import numpy as np
import pytest

import evaluate
import train_fixtures as fx
from data import records
from data.datasets import FASHION_MNIST
from experiments import runner
from tfcompat import tf
from training import checkpoint_files

FLAT = ["--flatness", "--flatness-batch", "16", "--hessian-k", "2", "--hessian-iters", "6"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished Entropy-SGD LeNet run (L = 2, 3 outer steps) on records whose train and test splits
    hold the same 48 images; returns (run folder, data folder)."""
    root = tmp_path_factory.mktemp("flatness")
    rng = np.random.RandomState(0)
    labels = np.arange(fx.TRAIN_SIZE) % 10
    images = rng.randint(0, 80, size=(fx.TRAIN_SIZE, 28, 28, 1)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 2 * k:2 * k + 8, 4:12, 0] = 250  # a bright square whose height says the class
    records.write_records(str(root / "data" / "fashion-mnist"), "fashion-mnist",
                          {"train": (images, labels), "test": (images, labels)}, list(FASHION_MNIST.classes),
                          progress=False)
    argv = fx.TINY + fx.common_args(root, root / "data") + ["-opt", "entropy-sgd", "-L", "2", "--epochs", "1",
                                                            "-n", "tiny"]
    assert fx.run_main(argv) == 0
    return root / "ckpt" / "tiny", root / "data"


def file_digests(folder):
    """Return {relative path: sha256} of every file under ``folder``."""
    digests = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                digests[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return digests


def flatness_json(run, folder, *extra):
    """Run evaluate.py --flatness on ``run`` with ``extra`` flags; return (the JSON it wrote, its stdout)."""
    path = folder / ("out%d.json" % len(list(folder.glob("out*.json"))))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = evaluate.main([str(run[0]), "--data-dir", str(run[1]), "--json", str(path)] + FLAT + list(extra))
    assert status == 0
    return json.loads(path.read_text()), out.getvalue()


@pytest.fixture(scope="module")
def measured(run, tmp_path_factory):
    """One default measurement of ``run``: (JSON, stdout, file digests of the run before, and after)."""
    before = file_digests(run[0])
    result, out = flatness_json(run, tmp_path_factory.mktemp("json"))
    return result, out, before, file_digests(run[0])


def test_flatness_prints_finite_numbers_and_leaves_the_checkpoint_unchanged(measured):
    result, out, before, after = measured
    assert after == before
    lines = {line.split()[0]: line for line in out.splitlines()}
    printed = [float(v) for v in lines["hessian"].split(":", 1)[1].split()]
    flat = result["flatness"]
    assert len(printed) == 2 and np.allclose(printed, flat["hessian_top"], rtol=1e-3)
    assert flat["hessian_top"][0] >= flat["hessian_top"][1]
    assert flat["hessian_top"][0] > 0  # a trained network's loss curves upward somewhere
    normalised = [float(v) for v in lines["filter-normalised"].split(":", 1)[1].split()]
    assert len(normalised) == 2 and np.allclose(normalised, flat["hessian_top_normalised"], rtol=1e-3)
    assert flat["hessian_top_normalised"][0] >= flat["hessian_top_normalised"][1]
    assert flat["hessian_top_normalised"][0] > 0
    assert not np.allclose(flat["hessian_top_normalised"], flat["hessian_top"], rtol=1e-2)
    numbers = [float(v) for v in re.findall(r"[-+]?\d+\.?\d*(?:e[-+]?\d+)?", lines["local"] + lines["training"])]
    assert numbers and all(math.isfinite(v) for v in numbers)
    for key in ("x_mu_norm", "inner_loss", "x_xprime_norm"):
        assert math.isfinite(flat["local_entropy"][key])
    assert flat["local_entropy"]["x_mu_norm"] > 0
    # The local entropy uses the run's own Langevin settings (L = 2 from settings.json) and gamma = g0.
    assert flat["langevin"]["L"] == 2 and flat["local_entropy"]["gamma"] == pytest.approx(flat["langevin"]["g0"])
    assert flat["batch"] == 16 and flat["parameters"] > 100000  # LeNet: about 131 k weights


def test_the_fixed_batch_loss_is_the_inference_mode_loss_of_those_images(run, tmp_path):
    # A batch of all 48 training images is the test split itself (same images): its mean loss in
    # inference mode must equal the test loss that the ordinary evaluation computes in batches of 8.
    result, _ = flatness_json(run, tmp_path, "--flatness-batch", str(fx.TRAIN_SIZE))
    assert result["flatness"]["train_loss"] == pytest.approx(result["test_loss"], rel=1e-5)


def test_flatness_is_deterministic_with_a_seed_and_set_overrides_the_langevin_settings(run, measured, tmp_path):
    first = measured[0]["flatness"]
    assert flatness_json(run, tmp_path)[0]["flatness"] == first
    other = flatness_json(run, tmp_path, "--seed", "1", "--set", "L=3")[0]["flatness"]
    assert other["train_loss"] != first["train_loss"]  # another batch of 16 of the 48 images
    assert other["langevin"]["L"] == 3


def rescale_filters(prefix, layer, factors):
    """Rewrite checkpoint ``prefix`` with the filters of convolution ``layer`` (its kernel's last axis)
    scaled by ``factors``, and its batch norm's moving mean by ``factors``, moving variance by their squares:
    the same function in inference mode."""
    reader = tf.train.load_checkpoint(prefix)
    values = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    values[layer + "/conv/kernel"] *= factors
    values[layer + "/bn/moving_mean"] *= factors
    values[layer + "/bn/moving_variance"] *= factors ** 2
    with tf.Graph().as_default():
        variables = {name: tf.Variable(value, name="v%d" % i) for i, (name, value) in enumerate(values.items())}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver(variables).save(sess, prefix, write_meta_graph=False, write_state=False)


def test_the_json_names_the_checkpoint_by_its_bytes_and_the_rules_that_measured_it(run, measured, tmp_path):
    result = measured[0]
    prefix = result["checkpoint"]
    files = [prefix + ".index"] + sorted(glob.glob(prefix + ".data-*"))
    assert len(files) == 2
    contents = b""
    for path in files:
        with open(path, "rb") as f:
            contents += f.read()
    assert result["checkpoint_sha256"] == hashlib.sha256(contents).hexdigest()
    assert result["version"] == evaluate.RESULTS_VERSION
    # 3 outer steps of 16 images on 48: an evaluation after each, each reading bn_reestimate_batches = 2
    # batches, so the final one's pass starts at batch 4 of the stream.
    assert result["batch_norm"] == {"batches": 2, "start_batch": 4}
    assert result["options"] == {"dataset": None, "model": None, "data_dir": str(run[1]), "set": [], "flatness": True,
                                 "flatness_batch": 16, "hessian_k": 2, "hessian_iters": 6, "seed": 0}
    path = tmp_path / "moving.json"
    with contextlib.redirect_stdout(io.StringIO()):
        assert evaluate.main([str(run[0]), "--data-dir", str(run[1]), "--set", "bn_reestimate=false",
                              "--json", str(path)]) == 0
    moving = json.loads(path.read_text())
    assert moving["batch_norm"] is None and moving["options"]["set"] == ["bn_reestimate=false"]


def test_the_study_runner_takes_a_result_just_written_as_up_to_date_and_only_for_its_flags(run, tmp_path):
    # as experiments.runner.Study.flatness runs it: evaluate.py RUN --json PATH FLAGS
    flags, path = ["--data-dir", str(run[1]), "--seed", "3"], str(tmp_path / "r.json")
    with contextlib.redirect_stdout(io.StringIO()):
        assert evaluate.main([str(run[0]), "--json", path] + flags) == 0
    options = evaluate.measurement_options(evaluate.parse_args(["elsewhere"] + flags)[1])
    with open(path) as f:
        assert runner.current_result(path, str(run[0]), options) == json.load(f)
    assert runner.current_result(path, str(run[0]), dict(options, seed=4)) is None


def test_rescaling_filters_before_batch_norm_moves_the_raw_eigenvalues_only(run, measured, tmp_path):
    # stage1's 50 filters scaled by 0.5 to 3; batch-norm statistics re-estimated at x (bn_reestimate) or
    # rescaled with them: the function, so the losses and the normalised eigenvalues, stay the same.
    folder = tmp_path / "rescaled"
    shutil.copytree(str(run[0]), str(folder))
    prefix = checkpoint_files.newest_first(str(folder))[0]
    assert os.path.basename(prefix) in measured[0]["checkpoint"]
    rescale_filters(prefix, "model/stage1", np.linspace(0.5, 3.0, 50, dtype=np.float32))
    rescaled, _ = flatness_json((folder, run[1]), tmp_path)
    first, other = measured[0]["flatness"], rescaled["flatness"]
    assert rescaled["test_loss"] == pytest.approx(measured[0]["test_loss"], rel=1e-4)
    assert other["train_loss"] == pytest.approx(first["train_loss"], rel=1e-4)
    assert not np.allclose(other["hessian_top"], first["hessian_top"], rtol=0.05)
    np.testing.assert_allclose(other["hessian_top_normalised"], first["hessian_top_normalised"], rtol=1e-4)


def test_bad_flatness_flags_are_one_line_errors(run, capsys):
    # --set values are checked as train.py checks them (training.schema): a batch of 0, an empty batch-norm
    # pass or a negative rotation is a one-line error, not a traceback or a silent NaN
    for extra in (["--hessian-k", "3", "--hessian-iters", "2"], ["--flatness-batch", "0"], ["--set", "L=0"],
                  ["--set", "batch_size=0"], ["--set", "bn_reestimate_batches=0"], ["--set", "rotate=-5"]):
        with pytest.raises(SystemExit) as e:
            evaluate.main([str(run[0]), "--data-dir", str(run[1]), "--flatness"] + extra)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("evaluate.py: error:") and err.count("\n") == 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_evaluation_is_one_line_and_writes_no_json(run, tmp_path, capsys, monkeypatch, signum):
    # Ctrl-C, a scheduler's SIGTERM or a lost terminal during the Hessian: no traceback, no silent death,
    # and no result file that a study would take for a measurement.
    monkeypatch.setattr(evaluate, "measure_flatness", lambda *args: os.kill(os.getpid(), signum))
    path = tmp_path / "out.json"
    assert evaluate.main([str(run[0]), "--data-dir", str(run[1]), "--json", str(path)] + FLAT) == 128 + signum
    assert capsys.readouterr().err == "evaluate.py: interrupted; no --json file written\n"
    assert not path.exists()

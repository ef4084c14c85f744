"""Flags and config_train -> settings: precedence, --set parsing, one-line errors, run names, schedules."""
import numpy as np
import pytest

from tfcompat import tf
from training import exits, schedule, schema, settings


class Config(object):
    dataset = "cifar10"
    data_dir = "datasets"
    batch_size = 128
    augment = True
    rotate = 0.0
    model = "wrn"
    wrn_depth = 28
    wrn_width = 10
    dropout = 0.0
    data_format = "NHWC"
    precision = "fp32"
    xla = False
    gpus = 1
    optimizer = "entropy-sgd"
    epochs = 200
    learning_rate = 0.1
    lr_decay = 0.2
    lr_epochs = [60, 120, 160]
    momentum = 0.9
    nesterov = True
    weight_decay = 5e-4
    adam_learning_rate = 1e-3
    L = 20
    g0 = 0.03
    g1 = 1e-3
    langevin_lr = 0.1
    epsilon = 1e-4
    mu_decay = 0.75
    esgd_learning_rate = 1.0
    esgd_lr_decay = 0.2
    esgd_lr_epochs = [80, 160]
    esgd_weight_decay = 1e-3
    esgd_outer_momentum = 0.9
    replicas = 3
    rho = 0.01
    rho_scoping = 1e-3
    seed = 42
    log_every = 20
    eval_every = 1.0
    bn_reestimate = True
    bn_reestimate_batches = 50
    checkpoint_every = 1.0
    keep_checkpoints = 3


def parse(*argv):
    return settings.parse_settings(list(argv), Config)


def test_defaults_come_from_config_and_name_is_derived():
    s = parse()
    assert (s.optimizer, s.L, s.model, s.dataset, s.lr_epochs) == ("entropy-sgd", 20, "wrn", "cifar10", [60, 120, 160])
    assert s.run_name == "entropy-sgd_wrn_cifar10_L20"
    assert parse("-opt", "sgd", "-m", "lenet", "-d", "fashion-mnist").run_name == "sgd_lenet_fashion-mnist"
    assert parse("-n", "mine").run_name == "mine"


def test_the_real_config_parses_and_has_every_setting_used():
    from config import config_train
    s = settings.parse_settings([], config_train)
    for key in Config.__dict__:
        if not key.startswith("_"):
            assert hasattr(s, key), key


def test_set_parses_each_type_and_flags_win_over_set():
    s = parse("--set", "batch_size=64", "--set", "nesterov=false", "--set", "g0=0.5",
              "--set", "lr_epochs=[10, 20.5]", "--set", "data_format=NCHW", "--set", "L=3", "-L", "7",
              "--epochs", "1.5", "--max-steps", "9", "--seed", "3")
    assert (s.batch_size, s.nesterov, s.g0, s.lr_epochs, s.data_format) == (64, False, 0.5, [10, 20.5], "NCHW")
    assert (s.L, s.epochs, s.max_steps, s.seed) == (7, 1.5, 9, 3)
    assert isinstance(s.batch_size, int) and isinstance(s.g0, float)
    assert parse("--set", "esgd_lr_epochs=").esgd_lr_epochs == []


@pytest.mark.parametrize("argv, fragment", [
    (["--set", "nosuchkey=1"], "no such key"),
    (["--set", "batch_size=abc"], "expected an integer"),
    (["--set", "nesterov=maybe"], "expected a bool"),
    (["--set", "lr_epochs=a,b"], "list of numbers"),
    (["--set", "batch_size"], "key=value"),
    (["-L", "-1"], "L must be >= 0"),
    (["-m", "resnet9000"], "unknown model"),
    (["-d", "svhn"], "invalid choice"),
    (["--epochs", "0"], "epochs must be"),
    (["--set", "mu_decay=1.0"], "mu_decay"),
    (["--set", "lr_epochs=5,1"], "increasing"),
    (["-rl", "-r", "x"], "exclude"),
    (["-n", "a/b"], "plain name"),
    (["--set", "eval_every=inf"], "eval_every must be finite"),
    (["--set", "checkpoint_every=nan"], "checkpoint_every must be finite"),
    (["--set", "lr_epochs=60,1e999"], "lr_epochs must be finite"),
    (["--epochs", "inf"], "epochs must be finite"),
    (["--set", "rotate=nan"], "rotate must be finite"),
    (["--set", "rotate=-5"], "rotate must be in"),
    (["--set", "lr_decay=-0.2"], "lr_decay"),
    (["--set", "esgd_lr_decay=0"], "esgd_lr_decay"),
    (["--set", "esgd_lr_epochs=-1,80"], ">= 0"),
    (["--set", "learning_rate=-1"], "learning_rate must be >= 0"),
])
def test_bad_values_are_one_line_errors_with_status_2(capsys, argv, fragment):
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("train.py: error: "), err
    assert fragment in err


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse("-h")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("-opt", "-L", "-d", "-m", "-n", "-rl", "-r", "--data-dir", "--epochs", "--max-steps",
                 "--seed", "--set"):
        assert " %s" % flag in out, flag
    assert "debug-nan" not in out


def test_exit_statuses_are_distinct_and_help_lists_them(capsys):
    statuses = [exits.DONE, exits.FAILED, exits.BAD_FLAGS, exits.DIVERGED, exits.INTERRUPTED, exits.TERMINATED]
    assert len(set(statuses)) == len(statuses)  # a sweep tells a diverged run from a failed one
    assert (exits.FAILED, exits.DIVERGED) == (1, 3)  # as documented (README, docs/running.md, CHANGELOG)
    with pytest.raises(SystemExit):
        parse("-h")
    shown = " ".join(capsys.readouterr().out.split())
    assert " ".join(exits.SUMMARY.split()) in shown and "1 failed" in shown and "3 diverged" in shown


def test_resume_mismatch_names_changed_keys():
    s = parse("-L", "5")
    assert settings.resume_mismatch(dict(vars(s)), s) is None
    assert "L 20 -> 5" in settings.resume_mismatch(dict(vars(s), L=20), s)


def test_effective_epochs_and_step_counts():
    # Entropy-SGD with L = 5 consumes 5 batches per outer step; the baselines one.
    assert schedule.batches_per_step("entropy-sgd", 5) == 5
    assert schedule.batches_per_step("entropy-sgd", 0) == 1
    assert schedule.batches_per_step("adam", 5) == 1
    assert schedule.effective_epoch(10, 100, 5, 1000) == pytest.approx(5.0)
    assert schedule.steps_for_epochs(5.0, 100, 5, 1000) == 10
    assert schedule.steps_for_epochs(0.01, 100, 5, 1000) == 1
    assert schedule.steps_for_epochs(1.0, 128, 20, 50000) == 20   # 19.53 rounded up
    assert schedule.every_steps(1.0, 128, 1, 50000) == 391


def test_learning_rate_tensor_is_piecewise_in_effective_epochs():
    # batch 10, L = 2, 100 examples: one outer step = 0.2 effective epochs.
    boundaries = [1.0, 2.0]
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [])
        lr = schedule.learning_rate(step, 1.0, 0.2, boundaries, 10, 2, 100)
        with tf.Session() as sess:
            got = [sess.run(lr, {step: k}) for k in range(14)]
    epochs = np.arange(14) * 0.2
    expected = 1.0 * 0.2 ** np.searchsorted(boundaries, epochs, side="right")
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[4] == pytest.approx(1.0) and got[5] == pytest.approx(0.2) and got[10] == pytest.approx(0.04)


def test_schedule_settings_pick_the_optimizer_family():
    s = parse()
    assert schedule.schedule_settings(s) == (1.0, 0.2, [80, 160])
    assert schedule.schedule_settings(parse("-opt", "momentum")) == (0.1, 0.2, [60, 120, 160])
    assert schedule.schedule_settings(parse("-opt", "adam"))[0] == 1e-3
    # L = 0 is plain Nesterov SGD: the SGD recipe, not the outer rate 1 of Entropy-SGD.
    assert schedule.schedule_settings(parse("-L", "0")) == (0.1, 0.2, [60, 120, 160])
    assert schedule.uses_esgd_recipe(parse("-L", "1")) and not schedule.uses_esgd_recipe(parse("-L", "0"))


def test_speed_and_parallel_flags_reach_the_settings():
    s = parse("--precision", "bf16", "--xla", "-g", "2", "--set", "batch_size=32")
    assert (s.precision, s.xla, s.gpus) == ("bf16", True, 2)
    assert schedule.examples_per_batch(s) == 64  # batch_size is per device
    assert (parse().precision, parse().xla, parse().gpus) == ("fp32", False, 1)
    p = parse("-opt", "parle", "--replicas", "4", "-L", "5")
    assert p.replicas == 4 and p.run_name == "parle_wrn_cifar10_n4_L5"
    # Parle's replicas are Entropy-SGD learners: its recipe, L batches per outer step, epochs per replica
    assert schedule.uses_esgd_recipe(p) and schedule.schedule_settings(p) == (1.0, 0.2, [80, 160])
    assert schedule.batches_per_step("parle", 5) == 5 and schedule.examples_per_batch(p) == 128
    assert {"precision", "gpus"} <= set(schema.keys(schema.RESUME))


def test_entropy_sgd_arguments_take_the_outer_momentum_of_its_recipe():
    from training.optimizer_args import esgd_arguments
    lua = esgd_arguments(parse("-L", "20", "--set", "esgd_outer_momentum=0", "--set", "momentum=0.8"), 1.0, None)
    assert (lua["outer_momentum"], lua["momentum"]) == (0.0, 0.8)
    assert esgd_arguments(parse("-L", "20"), 1.0, None)["outer_momentum"] == Config.esgd_outer_momentum
    # L = 0 is Nesterov SGD with the SGD recipe: one momentum, whatever the Entropy-SGD recipe says
    sgd = esgd_arguments(parse("-L", "0", "--set", "esgd_outer_momentum=0", "--set", "momentum=0.8"), 1.0, None)
    assert (sgd["outer_momentum"], sgd["momentum"]) == (0.8, 0.8)

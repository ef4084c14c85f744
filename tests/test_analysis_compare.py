"""compare.py and analysis.events / analysis.report on event files this test writes with known values.

Two configurations: "sgd" (3 seeds, 0.1 effective epochs per step; seed 3 evaluated at other steps)
and "esgd-L5" (2 seeds, 0.5 effective epochs per step; seed 2 killed and resumed, so its file holds
orphaned events that must be dropped). Every expected number below is worked out by hand from the
values written here.
"""
import os

import numpy as np
import pytest

import compare
from analysis import events, report
from event_fixtures import T0, write_event_file, write_run

@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tb"))
    train_steps = (5, 10, 15, 20)
    for name, losses, errors in (
            ("sgd-seed1", (2.0, 1.0, 0.5, 0.25), {10: 0.5, 15: 0.3, 20: 0.2}),
            ("sgd-seed2", (3.0, 1.5, 0.75, 0.5), {10: 0.6, 15: 0.2, 20: 0.25}),
            ("sgd-seed3", (1.0, 0.5, 0.25, 0.125), {10: 0.4, 14: 0.25, 20: 0.15})):
        write_run(root, name, 0.1, 3.0, dict(zip(train_steps, losses)), errors)
    # Train scalars at steps 2 and 4 only: the test point at step 6 lies past them (epoch 3.0 by ratio).
    write_run(root, "esgd-L5_s1", 0.5, 20.0, {2: 1.0, 4: 0.5}, {2: 0.4, 4: 0.3, 6: 0.1})
    write_run(root, "esgd-L5_s2", 0.5, 20.0, {2: 2.0, 4: 1.5}, {2: 0.5, 4: 0.2, 6: 0.3},
              orphans=({6: (100.0, 99.0)}, {6: 0.01}), restart=5)
    return root


@pytest.fixture(scope="module")
def groups(runs_root):
    runs = [events.load_run(p) for p in events.find_runs([runs_root])]
    return report.group_runs(runs)


def test_runs_are_found_and_grouped_by_seed_suffix(runs_root, groups):
    assert list(groups) == ["esgd-L5", "sgd"]
    assert [r.name for r in groups["sgd"]] == ["sgd-seed1", "sgd-seed2", "sgd-seed3"]
    assert [r.name for r in groups["esgd-L5"]] == ["esgd-L5_s1", "esgd-L5_s2"]
    # a glob and a run folder name the same runs as their parent folder
    assert events.find_runs([os.path.join(runs_root, "sgd-*"), os.path.join(runs_root, "esgd-L5_s1")]) == \
        sorted(os.path.join(runs_root, n) for n in ("sgd-seed1", "sgd-seed2", "sgd-seed3", "esgd-L5_s1"))


def test_config_name_rules():
    assert report.config_name("lenet-sgd-seed12") == "lenet-sgd"
    assert report.config_name("wrn_esgd_L20_s3") == "wrn_esgd_L20"
    assert report.config_name("lenet-L5") == "lenet-L5"
    assert report.config_name("a-s1-b") == "a-s1-b"
    assert report.config_name("lenet-sgd-run2", r"^(.*)-run\d+$") == "lenet-sgd"
    assert report.config_name("other", r"^(.*)-run\d+$") == "other"


def test_series_sit_on_effective_epochs_and_orphans_are_dropped(groups):
    s3 = groups["sgd"][2]
    np.testing.assert_allclose(s3.test_error.epochs, [1.0, 1.4, 2.0])  # step 14: between logged 10 and 15
    np.testing.assert_allclose(s3.test_error.values, [0.4, 0.25, 0.15], rtol=1e-6)
    resumed = groups["esgd-L5"][1]
    np.testing.assert_array_equal(resumed.test_error.steps, [2, 4, 6])
    np.testing.assert_allclose(resumed.test_error.epochs, [1.0, 2.0, 3.0])  # step 6 past the last train log
    np.testing.assert_allclose(resumed.test_error.values, [0.5, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(resumed.train_loss.values, [2.0, 1.5])
    assert [r.wall_time for r in groups["sgd"]] == [60.0, 60.0, 60.0]
    assert resumed.wall_time == 120.0


def test_table_values_are_means_and_sample_stds_over_seeds(groups):
    rows = {r.config: r for r in report.summarize(groups)}
    sgd, esgd = rows["sgd"], rows["esgd-L5"]
    # sgd: finals 0.2, 0.25, 0.15; bests 0.2, 0.2, 0.15
    assert (sgd.seeds, sgd.epochs, sgd.wall_time) == (3, 2.0, 60.0)
    np.testing.assert_allclose([sgd.final_mean, sgd.final_std], [0.2, 0.05], rtol=1e-6)
    np.testing.assert_allclose([sgd.best_mean, sgd.best_std], [0.55 / 3, 0.05 / np.sqrt(3)], rtol=1e-6)
    # esgd-L5: finals 0.1, 0.3; bests 0.1, 0.2
    assert (esgd.seeds, esgd.epochs, esgd.wall_time) == (2, 3.0, 120.0)
    np.testing.assert_allclose([esgd.final_mean, esgd.final_std], [0.2, np.sqrt(0.02)], rtol=1e-6)
    np.testing.assert_allclose([esgd.best_mean, esgd.best_std], [0.15, np.sqrt(0.005)], rtol=1e-6)
    table = report.markdown_table(report.summarize(groups))
    assert "| esgd-L5 | 2 | 3.0 | 20.00 ± 14.14 | 15.00 ± 7.07 | 2.0 min |" in table
    assert "| sgd | 3 | 2.0 | 20.00 ± 5.00 | 18.33 ± 2.89 | 60 s |" in table


def test_plot_draws_the_seed_bands_and_writes_a_png(groups, tmp_path):
    out = str(tmp_path / "plot.png")
    drawn = report.plot(groups, out)
    assert sorted(drawn) == ["test_error", "train_loss"]
    assert list(drawn["test_error"]) == ["esgd-L5", "sgd"]
    err = drawn["test_error"]["sgd"]
    # seed 3's point at epoch 1.4 joins the grid; the others are interpolated there (0.34, 0.28) and
    # seed 3 at 1.5 (0.25 + (0.15 - 0.25) / 6)
    np.testing.assert_allclose(err.epochs, [1.0, 1.4, 1.5, 2.0])
    np.testing.assert_allclose(err.mean, [50.0, 29.0, (30 + 20 + 70 / 3.0) / 3, 20.0], rtol=1e-6)
    np.testing.assert_allclose(err.low, [40.0, 25.0, 20.0, 15.0], rtol=1e-6)
    np.testing.assert_allclose(err.high, [60.0, 34.0, 30.0, 25.0], rtol=1e-6)
    np.testing.assert_allclose(drawn["test_error"]["esgd-L5"].mean, [45.0, 25.0, 20.0], rtol=1e-6)
    loss = drawn["train_loss"]["sgd"]
    np.testing.assert_allclose(loss.epochs, [0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(loss.mean, [2.0, 1.0, 0.5, 0.875 / 3])
    np.testing.assert_allclose(loss.low, [1.0, 0.5, 0.25, 0.125])
    np.testing.assert_allclose(drawn["train_loss"]["esgd-L5"].high, [2.0, 1.5])
    import matplotlib.image
    pixels = matplotlib.image.imread(out)
    assert pixels.shape[:2] == (540, 1440)
    # the first configuration's line colour (matplotlib's C0, #1f77b4) is on the picture
    c0 = np.array([0x1f, 0x77, 0xb4]) / 255.0
    assert (np.abs(pixels[..., :3] - c0).max(axis=-1) < 0.02).sum() > 100
    assert os.listdir(str(tmp_path)) == ["plot.png"]  # no temporary left behind


def test_compare_main_prints_and_writes_table_and_plot(runs_root, tmp_path, capsys):
    out, table = str(tmp_path / "c.png"), str(tmp_path / "c.md")
    assert compare.main([runs_root, "--out", out, "--table", table]) == 0
    printed = capsys.readouterr().out
    with open(table) as f:
        written = f.read()
    assert written in printed
    assert "| sgd | 3 | 2.0 | 20.00 ± 5.00 |" in written
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_compare_group_regex_merges_configurations(runs_root, tmp_path, capsys):
    assert compare.main([runs_root, "--group", r"^[a-z]+", "--out", str(tmp_path / "g.png")]) == 0
    printed = capsys.readouterr().out
    assert "| esgd | 2 |" in printed and "| sgd | 3 |" in printed


@pytest.mark.parametrize("case, message", [
    ("missing", "no such directory"),
    ("empty", "no TensorBoard event files under"),
    ("no_test_tag", "has no 'error' scalar in test/ (scalars found: accuracy)"),
    ("no_epoch_tag", "has no 'effective_epoch' scalar in train/ (scalars found: loss)"),
])
def test_compare_errors_are_one_line_and_non_zero(tmp_path, capsys, case, message):
    target = tmp_path / "runs"
    if case == "empty":
        target.mkdir()
    elif case == "no_test_tag":
        write_event_file(str(target / "r" / "train"), [(1, T0, {"loss": 1.0, "effective_epoch": 0.1})])
        write_event_file(str(target / "r" / "test"), [(1, T0, {"accuracy": 0.5})])
    elif case == "no_epoch_tag":
        write_event_file(str(target / "r" / "train"), [(1, T0, {"loss": 1.0})])
        write_event_file(str(target / "r" / "test"), [(1, T0, {"error": 0.5})])
    assert compare.main([str(target), "--out", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("compare.py: error: ") and message in err and "\n" not in err
    assert not os.path.exists(str(tmp_path / "x.png"))


@pytest.mark.parametrize("blocked", ["figure", "table"])
def test_a_figure_or_table_that_cannot_be_written_is_one_line_and_non_zero(runs_root, tmp_path, capsys, blocked):
    # a folder where the file should go: its rename fails, as a full disk's write would
    out, table = tmp_path / "c.png", tmp_path / "c.md"
    (out if blocked == "figure" else table).mkdir()
    assert compare.main([runs_root, "--out", str(out), "--table", str(table)]) == 1
    err = capsys.readouterr().err
    assert err == "compare.py: error: cannot write %s: Is a directory\n" % (out if blocked == "figure" else table)
    # no temporary left, and no table after a failed figure (c.png the folder, then the figure written)
    assert sorted(p.name for p in tmp_path.iterdir()) == {"figure": ["c.png"], "table": ["c.md", "c.png"]}[blocked]


def test_compare_refuses_an_output_folder_that_does_not_exist(runs_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        compare.main([runs_root, "--out", str(tmp_path / "nope" / "x.png")])
    assert e.value.code == 2
    assert "does not exist" in capsys.readouterr().err


def test_times_puts_the_runs_it_matches_at_a_multiple_of_their_effective_epochs(runs_root, tmp_path, capsys):
    out = str(tmp_path / "t.png")
    assert compare.main([runs_root, "--times", "^esgd=3", "--times", "esgd|sgd=7", "--out", out]) == 0
    printed = capsys.readouterr().out
    # last evaluations at effective epochs 3.0 (esgd: step 6 x 0.5) and 2.0 (sgd: step 20 x 0.1); the
    # first rule that matches counts
    assert "| esgd-L5 | 2 | 9.0 |" in printed and "| sgd | 3 | 14.0 |" in printed


@pytest.mark.parametrize("rule, message", [
    ("parle", "expected REGEX=N"), ("parle=0", "expected REGEX=N"), ("=3", "expected REGEX=N"),
    ("parle=three", "expected REGEX=N"), ("parle=inf", "expected REGEX=N"), ("(=3", "bad regular expression"),
])
def test_times_refuses_a_rule_it_cannot_read(runs_root, tmp_path, capsys, rule, message):
    with pytest.raises(SystemExit) as e:
        compare.main([runs_root, "--times", rule, "--out", str(tmp_path / "t.png")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--times" in err and message in err and err.count("\n") == 1
    assert not os.listdir(str(tmp_path))

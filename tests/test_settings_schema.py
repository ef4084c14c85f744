"""The settings table (training.schema) against config_train, the modules it names, and everything that
is derived from it: flags, -h, --set, validation, the -rl check, evaluate.py's keys, model_settings."""
import json
import os
import re
import subprocess
import sys

import pytest

import config
from config import config_train
from training import schema, settings
from training.setting_types import FLOAT, Setting, at_least

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(config_class, *argv):
    return settings.parse_settings(list(argv), config_class)


def exit_message(capsys, config_class, *argv):
    """Parse ``argv``, expecting a one-line error with status 2; return that line."""
    with pytest.raises(SystemExit) as exit_info:
        parse(config_class, *argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("train.py: error: "), err
    return err


def test_config_train_and_the_schema_name_the_same_settings_and_every_default_passes_its_check():
    defaults = settings.config_defaults(config_train)
    assert list(defaults) == [s.name for s in schema.SETTINGS]
    for setting in schema.SETTINGS:
        assert setting.kind.fits(defaults[setting.name]), setting.name
        assert setting.problem(defaults[setting.name]) is None, setting.name
    assert settings.validate(parse(config_train)) is None


def test_config_sections_are_the_schema_groups():
    section = None
    with open(config.__file__) as f:
        for line in f:
            heading = re.match(r"\s*# --- ([\w-]+)", line)
            attribute = re.match(r"    (\w+) = ", line)
            if heading:
                section = heading.group(1)
            elif attribute:
                assert schema.find(attribute.group(1)).group == section, attribute.group(1)


class Misspelt(config_train):
    leraning_rate = 0.2


class WrongKind(config_train):
    batch_size = 128.0


@pytest.mark.parametrize("config_class, fragment", [
    (Misspelt, "config_train has leraning_rate, not a setting"),
    (WrongKind, "config_train.batch_size = 128.0 (integer expected)"),
])
def test_a_config_train_that_disagrees_with_the_schema_is_refused(capsys, config_class, fragment):
    assert fragment in exit_message(capsys, config_class)


def test_a_setting_missing_from_config_train_is_refused(capsys, monkeypatch):
    monkeypatch.setattr(schema, "SETTINGS", schema.SETTINGS + (Setting("knob", FLOAT, "a knob", "parle"),))
    assert "config_train has no knob" in exit_message(capsys, config_train)


def test_the_table_is_well_formed():
    names = [s.name for s in schema.SETTINGS + schema.OPTIONS]
    assert len(names) == len(set(names))
    flags = [f for s in schema.SETTINGS + schema.OPTIONS for f in s.flags]
    assert len(flags) == len(set(flags))
    roles = {schema.RESUME, schema.EVALUATE, schema.FLATNESS, schema.MODEL}
    for setting in schema.SETTINGS:
        # config_train holds the defaults; a group puts it in config.py's section and in -h
        assert setting.group in schema.GROUPS and setting.default is None and setting.help, setting.name
        assert set(setting.roles) <= roles, setting.name
    for option in schema.OPTIONS:
        assert option.group is None and option.flags and not option.roles, option.name


def test_the_listed_names_are_those_of_their_modules():
    from data import DATASETS
    from models import MODEL_NAMES, layers
    assert schema.MODEL_NAMES == MODEL_NAMES
    assert schema.DATASET_NAMES == tuple(DATASETS)
    assert (schema.PRECISIONS, schema.DATA_FORMATS) == (layers.PRECISIONS, layers.DATA_FORMATS)


def test_parsing_the_flags_does_not_import_tensorflow():
    code = ("import sys; from config import config_train; from training import settings; "
            "settings.parse_settings(['-L', '3', '--set', 'g0=0.1'], config_train); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_help_lists_every_flag_and_every_setting(capsys):
    with pytest.raises(SystemExit):
        parse(config_train, "-h")
    out = capsys.readouterr().out
    for setting in schema.SETTINGS + schema.OPTIONS:
        for flag in setting.flags:
            assert (" %s" % flag in out) == (setting.help is not None), flag
    for setting in schema.SETTINGS:
        assert re.search(r"^    %s +%s" % (setting.name, re.escape(setting.help.split()[0])), out, re.M), setting.name


KNOB = Setting("knob", FLOAT, "a new setting", "entropy-sgd", at_least(0), flags=("--knob",),
               roles=(schema.RESUME, schema.FLATNESS, schema.MODEL))


class WithKnob(config_train):
    knob = 0.5


@pytest.fixture
def knob(monkeypatch):
    """The schema with one more setting, declared in the table alone."""
    monkeypatch.setattr(schema, "SETTINGS", schema.SETTINGS + (KNOB,))


def test_a_new_setting_gets_set_its_flag_validation_and_help(capsys, knob):
    assert parse(WithKnob).knob == 0.5
    s = parse(WithKnob, "--set", "knob=2")
    assert s.knob == 2.0 and isinstance(s.knob, float)
    assert parse(WithKnob, "--set", "knob=2", "--knob", "3").knob == 3.0
    assert "--set knob=x: expected a number" in exit_message(capsys, WithKnob, "--set", "knob=x")
    assert "knob must be >= 0, got -1.0" in exit_message(capsys, WithKnob, "--set", "knob=-1")
    assert "knob must be finite" in exit_message(capsys, WithKnob, "--knob", "inf")
    with pytest.raises(SystemExit):
        parse(WithKnob, "-h")
    out = capsys.readouterr().out
    assert "--knob KNOB" in out and re.search(r"^    knob +a new setting", out, re.M)


def test_a_new_setting_gets_its_roles(knob, tmp_path, monkeypatch):
    s = parse(WithKnob, "--knob", "2")
    assert "knob 0.5 -> 2.0" in settings.resume_mismatch(dict(vars(s), knob=0.5), s)
    assert settings.model_settings(s).knob == 2.0
    # evaluate.py takes it from the run's settings.json, as a FLATNESS setting
    import evaluate
    monkeypatch.setattr(evaluate, "config_train", WithKnob)
    (tmp_path / "settings.json").write_text(json.dumps(dict(vars(s))))
    parser, args = evaluate.parse_args([str(tmp_path)])
    assert evaluate.evaluation_settings(parser, args, str(tmp_path)).knob == 2.0


def test_model_settings_are_all_a_model_reads():
    """Every model builds, with dropout and without, from ``model_settings`` alone."""
    from data.pipeline import model_key
    from models import MODEL_NAMES, get_model
    from tfcompat import tf
    s = settings.model_settings(parse(config_train, "--set", "wrn_depth=10", "--set", "wrn_width=1",
                                      "--set", "dropout=0.3"))
    assert sorted(vars(s)) == ["data_format", "dropout", "precision", "wrn_depth", "wrn_width"]
    for name in MODEL_NAMES:
        with tf.Graph().as_default():
            images = tf.zeros([1, 28, 28, 1] if name in ("lenet", "mnistfc") else [1, 32, 32, 3])
            get_model(name)(images, True, 10, s, dropout_key=model_key(0, 0))
            get_model(name)(images, False, 10, s)

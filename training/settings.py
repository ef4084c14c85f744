"""Flags + ``config_train`` -> one plain settings object (a ``types.SimpleNamespace``).

Every setting is declared once, in training.schema; from that table this module derives the argument
parser and -h, ``--set`` parsing, validation, the -rl check and what a model is given. Precedence,
lowest first: ``config_train`` defaults, ``--set key=value`` overrides, then the named flags (``-opt``,
``-L``, ``-d``, ``-m``, ``--epochs``, ...) when given. Every bad value is reported as one line
``train.py: error: ...`` and exit status 2, like argparse's own errors. Nothing here imports TensorFlow,
so flags are parsed (and -h answered) before it loads.
"""
import argparse
import shutil
import textwrap
import types

from training import exits, schema
from training.console import say
from training.setting_types import BOOL

PROG = "train.py"
DESCRIPTION = ("Train a model with Entropy-SGD, Parle, SGD, momentum or Adam. Defaults come from config.py "
               "(config_train); flags and --set override them. Epochs are effective epochs: an Entropy-SGD "
               "outer step with L Langevin steps counts L minibatches.")
NAME_COLUMN = 22  # width of the setting names in -h's list of settings


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage block), exit status 2."""

    def error(self, message):
        self.exit(exits.BAD_FLAGS, "%s: error: %s (see -h)\n" % (self.prog, message))


def config_defaults(config_class):
    """Return {name: default} of every setting, read from ``config_class`` (a copy of each list).

    Raises ValueError when the class and the schema disagree: an attribute that is no setting (a misspelt
    one would otherwise be ignored), a setting the class lacks, or a default of the wrong kind.
    """
    attributes = {k: getattr(config_class, k) for k in dir(config_class) if not k.startswith("_")}
    names = [setting.name for setting in schema.SETTINGS]
    unknown = sorted(k for k, v in attributes.items() if k not in names and not callable(v))
    if unknown:
        raise ValueError("config_train has %s, not a setting (each is declared in training/schema.py)"
                         % ", ".join(unknown))
    missing = [name for name in names if name not in attributes]
    if missing:
        raise ValueError("config_train has no %s (a setting of training/schema.py)" % ", ".join(missing))
    for setting in schema.SETTINGS:
        if not setting.kind.fits(attributes[setting.name]):
            raise ValueError("config_train.%s = %r (%s expected)"
                             % (setting.name, attributes[setting.name], setting.kind.name))
    return {name: _copy(attributes[name]) for name in names}


def _copy(value):
    """A list default is copied: --set must not change config_train's own."""
    return list(value) if isinstance(value, list) else value


def build_parser(defaults):
    """Return the train.py argument parser: the flag of each setting and option that has one, ``--set``,
    and, after the flags, every config_train setting by group. ``defaults`` (config values) appear in
    the help text."""
    width = shutil.get_terminal_size().columns - 2  # as argparse wraps the flags' help
    p = OneLineParser(prog=PROG, description=textwrap.fill(DESCRIPTION, width),
                      epilog=settings_help(defaults, width) + "\n\n" + textwrap.fill(exits.SUMMARY, width),
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    for setting in schema.SETTINGS:
        if setting.flags:
            _add_flag(p, setting, shown_default=defaults[setting.name], default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config_train setting (listed below), e.g. --set batch_size=64 "
                        "--set lr_epochs=60,120 (repeatable)")
    for option in schema.OPTIONS:
        _add_flag(p, option, shown_default=option.default, default=option.default)
    return p


def _add_flag(parser, setting, shown_default, default):
    """Add the flag of ``setting``: ``default`` is its value when not given (None for a config_train setting,
    which then keeps its config or --set value), ``shown_default`` what -h says the default is."""
    shown = "" if shown_default is None or setting.kind is BOOL else " (default %s)" % shown_default
    kwargs = dict(dest=setting.name, default=default,
                  help=argparse.SUPPRESS if setting.help is None else setting.help + shown)
    if setting.kind is BOOL:
        kwargs.update(action="store_true")
    else:
        kwargs.update(type=setting.kind.flag_type, metavar=setting.metavar,
                      choices=setting.check.choices if setting.check else None)
    parser.add_argument(*setting.flags, **kwargs)


def settings_help(defaults, width):
    """Return the -h list of every config_train setting by group (name, meaning, kind, default, flag),
    wrapped at ``width`` columns."""
    lines = ["config_train settings (config.py), by group; change one for a run with --set KEY=VALUE:"]
    for group in schema.GROUPS:
        lines.append("  %s:" % group)
        for setting in schema.SETTINGS:
            if setting.group == group:
                text = "%s (%s; default %s%s)" % (setting.help, setting.kind.name, _as_text(defaults[setting.name]),
                                                  "; flag " + setting.flags[0] if setting.flags else "")
                lines += textwrap.wrap(text, width, initial_indent="    %-*s " % (NAME_COLUMN, setting.name),
                                       subsequent_indent=" " * (NAME_COLUMN + 5))
    return "\n".join(lines)


def _as_text(value):
    """A default as --set would take it (a list as ``60,120,160``)."""
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def apply_overrides(values, pairs):
    """Apply ``key=value`` strings to the dict ``values`` in place; raises ValueError with a one-line reason."""
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError("--set expects key=value, got %r" % pair)
        try:
            setting = schema.find(key)
        except KeyError:
            known = ", ".join(sorted(s.name for s in schema.SETTINGS))
            raise ValueError("--set %s: no such key in config_train (known: %s)" % (key, known)) from None
        try:
            values[key] = setting.kind.parse(text)
        except ValueError as e:
            raise ValueError("--set %s=%s: %s" % (key, text, e)) from None


def default_run_name(s):
    """Return the run name used when -n is not given, e.g. ``entropy-sgd_wrn_cifar10_L20``."""
    name = "%s_%s_%s" % (s.optimizer, s.model, s.dataset)
    if s.optimizer == "parle":
        name += "_n%d" % s.replicas
    return name + ("_L%d" % s.L if s.optimizer in ("entropy-sgd", "parle") else "")


def validate(s):
    """Return a one-line description of the first nonsensical value in settings ``s``, or None: each
    setting and option against its own check (training.schema), then the rules that involve several."""
    problem = first_problem(s, schema.SETTINGS + schema.OPTIONS)
    if problem:
        return problem
    return next((message for ok, message in schema.RULES if not ok(s)), None)


def first_problem(s, declared=schema.SETTINGS):
    """Return the message of the first of the ``declared`` settings whose value in ``s`` fails its own
    check, or None (evaluate.py checks the settings alone: it has no training options)."""
    return next((p for p in (d.problem(getattr(s, d.name)) for d in declared) if p), None)


def parse_settings(argv, config_class):
    """Parse ``argv`` over ``config_class``'s defaults; return the settings namespace: every setting and
    option of training.schema (``run_name`` derived when -n is not given).

    Exits with status 2 and a one-line message on any bad flag or value (the argparse convention), and on
    a ``config_class`` that does not match the schema.
    """
    try:
        values = config_defaults(config_class)
    except ValueError as e:
        OneLineParser(prog=PROG).error(str(e))
    parser = build_parser(values)
    args = parser.parse_args(argv)
    try:
        apply_overrides(values, args.set)
    except ValueError as e:
        parser.error(str(e))
    values.update({setting.name: getattr(args, setting.name) for setting in schema.SETTINGS
                   if getattr(args, setting.name, None) is not None})
    values.update({option.name: getattr(args, option.name) for option in schema.OPTIONS})
    s = types.SimpleNamespace(**values)
    s.run_name = s.run_name or default_run_name(s)
    problem = validate(s)
    if problem:
        parser.error(problem)
    return s


def resume_mismatch(saved, s):
    """Return a one-line list of the RESUME settings (training.schema) whose saved value differs from
    ``s``, or None if all agree."""
    diffs = ["%s %r -> %r" % (k, saved[k], getattr(s, k)) for k in schema.keys(schema.RESUME)
             if k in saved and saved[k] != getattr(s, k)]
    return "; ".join(diffs) or None


def model_settings(s):
    """Return what a model reads of settings ``s``: its MODEL settings (training.schema), and nothing else,
    so that a model cannot come to depend on another setting unnoticed."""
    return types.SimpleNamespace(**{k: getattr(s, k) for k in schema.keys(schema.MODEL)})


def fail(prog, message, status=exits.FAILED):
    """Print ``PROG: error: message`` on stderr (never raising) and return ``status`` (for main's return value)."""
    say("%s: error: %s" % (prog, message))
    return status

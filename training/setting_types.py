"""The vocabulary of the settings table (training.schema): value kinds, checks and the ``Setting`` record.

A kind says how ``--set`` text becomes a value and which ``config_train`` values fit; a check says which
values make sense, in a one-line message naming the setting the way the user can change it. Nothing here
imports TensorFlow: flags are parsed before it loads.
"""
import ast
import dataclasses
import math
from typing import Callable, Optional, Tuple

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class Kind:
    """A setting's value type."""
    name: str                        # what -h and messages call it
    parse: Callable                  # --set text -> value; ValueError (the reason) when the text does not fit
    fits: Callable                   # value -> whether it is of this kind (a config_train default)
    flag_type: Callable = str        # argparse's ``type`` of a flag of this kind


def _is_number(value):
    """bool is an int in Python, but never a number setting."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_bool(text):
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("expected a bool (true/false/1/0/yes/no)")


def _parse_int(text):
    try:
        return int(text)
    except ValueError:
        raise ValueError("expected an integer") from None


def _parse_float(text):
    try:
        return float(text)
    except ValueError:
        raise ValueError("expected a number") from None


def _parse_numbers(text):
    """``60,120,160`` or ``[60, 120, 160]`` -> [60, 120, 160] (ints stay ints); empty text -> []."""
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    return [_parse_number(item.strip()) for item in body.split(",") if item.strip()]


def _parse_number(text):
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError("expected a list of numbers") from None
    if not _is_number(value):
        raise ValueError("expected a list of numbers")
    return value


BOOL = Kind("bool", _parse_bool, lambda v: isinstance(v, bool))
INT = Kind("integer", _parse_int, lambda v: _is_number(v) and isinstance(v, int), int)
FLOAT = Kind("number", _parse_float, _is_number, float)
STR = Kind("text", str, lambda v: isinstance(v, str))
NUMBERS = Kind("list of numbers", _parse_numbers, lambda v: isinstance(v, list) and all(map(_is_number, v)))


@dataclasses.dataclass(frozen=True)
class Check:
    """Which values of a setting make sense.

    ``message`` is formatted with ``label`` (how the user names the setting) and ``value``. A check with
    ``choices`` puts them on the setting's flag too, where argparse rejects anything else."""
    ok: Callable
    message: str
    choices: Optional[Tuple[str, ...]] = None


def at_least(low):
    """A number >= ``low``."""
    return Check(lambda v: v >= low, "{label} must be >= %s, got {value!r}" % low)


def positive():
    """A number > 0."""
    return Check(lambda v: v > 0, "{label} must be > 0, got {value!r}")


def fraction():
    """A number in [0, 1)."""
    return Check(lambda v: 0 <= v < 1, "{label} must be in [0, 1), got {value!r}")


def within(low, high, unit):
    """A number in [low, high] ``unit``."""
    return Check(lambda v: low <= v <= high, "{label} must be in [%s, %s] %s, got {value!r}" % (low, high, unit))


def one_of(choices):
    """One of the words ``choices`` (a tuple); the flag offers them as argparse choices."""
    return Check(lambda v: v in choices, "{label} must be one of %s, got {value!r}" % ", ".join(choices), choices)


def known(what, names):
    """One of ``names``, else "unknown WHAT". Unlike ``one_of`` its flag takes any word, so a mistyped name on
    the command line gets this message, listing the known ones, rather than argparse's."""
    return Check(lambda v: v in names, "unknown %s {value!r} (known: %s)" % (what, ", ".join(names)))


def epoch_list():
    """Increasing effective epochs >= 0 (a learning-rate schedule's decay points)."""
    return Check(lambda v: list(v) == sorted(v) and min(v, default=0) >= 0,
                 "{label} must be increasing and >= 0, got {value!r}")


def plain_name():
    """A file name: not empty, no '/', not '.' or '..' (a run's folders are named after it)."""
    return Check(lambda v: bool(v.strip()) and "/" not in v and v not in (".", ".."),
                 "{label} must be a plain name, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting, declared once: everything train.py and evaluate.py derive from it.

    A ``config_train`` setting has a ``group`` and takes its default from config.py; an option of one
    invocation (-n, -rl, --max-steps, ...) has no group, is not in ``config_train`` (so ``--set`` cannot
    reach it) and carries its own ``default``. ``help`` None hides a test hook from -h. ``roles`` are the
    training.schema tags: RESUME, EVALUATE, FLATNESS, MODEL.
    """
    name: str
    kind: Kind
    help: Optional[str]
    group: Optional[str] = None
    check: Optional[Check] = None
    flags: Tuple[str, ...] = ()
    metavar: Optional[str] = None
    roles: Tuple[str, ...] = ()
    default: object = None

    @property
    def label(self):
        """How messages name the setting: an option by its flags (``-n/--name``); a config setting by its
        key, after a short flag that is spelt otherwise (``-g/gpus``), so either way of giving it is named."""
        if self.group is None:
            return "/".join(self.flags)
        short = [f for f in self.flags if not f.startswith("--") and f != "-" + self.name]
        return "/".join(short[:1] + [self.name])

    def problem(self, value):
        """Return the one-line message of what is wrong with ``value`` for this setting, or None.
        None is an option not given. ``--set`` reads ``inf``/``nan`` as numbers; no setting means anything
        with them."""
        if value is None:
            return None
        numbers = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
            return "%s must be finite, got %s" % (self.label, value)
        if self.check is not None and not self.check.ok(value):
            return self.check.message.format(label=self.label, value=value)
        return None

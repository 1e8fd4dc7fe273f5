"""Run configuration files of the command line: ``truesparse train --config run.toml``.

A configuration file gives options of a subcommand by name, one key per option: the option's
name without the leading ``--``, with dashes or underscores (``batch-size`` or
``batch_size``)::

    dataset = "digits"
    sizes = [32]               # or "32"; [] for no hidden layer
    density = 0.5
    epochs = 2
    batch_norm = true          # flags are booleans; nesterov = false is --no-nesterov
    optimizer = "adam"

The values are checked by the same rules as on the command line (the parser's own types and
choices), and the command line overrides the file. A file may also be the JSON output of an
earlier run (``truesparse train --json``): its ``config`` is used, ``null`` meaning "not
given", so ``truesparse train --config old.json --json new.json`` repeats a run.

Everything here is generic over an ``argparse`` parser; errors in a file are
:class:`ConfigError`, with a one-line message that names the file. Arguments of the wrong type
(a path that is no path, a parser that is no ``argparse.ArgumentParser``, a table that is no
dict) are a TypeError ``[config.<function>] name must be ..., got ...``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import platform
from pathlib import Path
from typing import Any, Iterable, Union

from ._checks import _got, show
from .io import path_argument

__all__ = [
    "ConfigError",
    "check",
    "from_file",
    "options",
    "read",
    "resolve_exclusive",
    "to_arguments",
    "to_toml",
    "versions",
]

PathLike = Union[str, "os.PathLike[str]"]
# The attribute an argument type carries when it parses a list from "a,b,c" (cli._list_of),
# so that a file may give the list as an array.
LIST_SEPARATOR = "list_separator"


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message is one line."""


# --- reading ---------------------------------------------------------------------------------


def _tomllib():
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:
        try:
            import tomli as tomllib  # the same parser, for Python < 3.11
        except ModuleNotFoundError:
            raise ConfigError(
                "reading TOML on Python < 3.11 needs tomli: pip install tomli"
            ) from None
    return tomllib


def read(path: PathLike) -> dict:
    """The table of options in ``path``: a TOML file, or (suffix ``.json``) a JSON object or
    the JSON output of a run (then its ``config``). Errors name the file."""
    path = Path(path_argument(path, "config.read"))
    what = f"{path}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{what}: is a directory") from None
    except OSError as e:
        raise ConfigError(f"{what}: cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what}: not a UTF-8 text file") from None
    if path.suffix.lower() == ".json":
        try:
            table = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{what}: invalid JSON: {e}") from None
        if isinstance(table, dict) and isinstance(table.get("config"), dict) and "history" in table:
            table = table["config"]  # the output of truesparse train --json
    else:
        tomllib = _tomllib()
        try:
            table = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{what}: invalid TOML: {e}") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{what}: expected a table of options, got {type(table).__name__}")
    return table


# --- checking against a parser ---------------------------------------------------------------


def options(parser: argparse.ArgumentParser, exclude: Iterable[str] = ("config", "resume")) -> dict:
    """The options a file may give: destination name -> argparse action (``--help``,
    ``--version`` and the destinations in ``exclude`` aside: a file does not name another
    file of options or a checkpoint to resume)."""
    _check_parser(parser, "config.options")
    if isinstance(exclude, (str, bytes)) or not isinstance(exclude, Iterable):
        raise TypeError(
            f"[config.options] exclude must be an iterable of option names, got {_got(exclude)}"
        )
    exclude = set(exclude)
    found = {}
    for action in parser._actions:
        if not action.option_strings or action.dest == argparse.SUPPRESS:
            continue
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        if action.dest in exclude:
            continue
        found[action.dest] = action
    return found


def _check_parser(parser, op: str) -> None:
    if not isinstance(parser, argparse.ArgumentParser):
        raise TypeError(
            f"[{op}] parser must be an argparse.ArgumentParser, got {type(parser).__name__}"
        )


def _check_table(table, name: str, op: str) -> None:
    if not isinstance(table, dict):
        raise TypeError(f"[{op}] {name} must be a dict, got {type(table).__name__}")


def _exclusive_groups(parser: argparse.ArgumentParser) -> list[list[str]]:
    return [[a.dest for a in group._group_actions] for group in parser._mutually_exclusive_groups]


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    return type(value).__name__


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _convert(action: argparse.Action, key: str, value: Any) -> Any:
    """One value of the file, checked and converted as the command line would."""
    if action.nargs == 0:  # a flag: store_true, --x/--no-x
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {_type_name(value)} {value!r}")
        return value
    separator = getattr(action.type, LIST_SEPARATOR, None)
    if isinstance(value, list) and separator is not None:
        for item in value:
            if isinstance(item, (bool, dict, list)) or not isinstance(item, (int, float, str)):
                raise ConfigError(f"{key}: expected an array of numbers, got {value!r}")
        text = separator.join(_text(item) for item in value)
    elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
        expected = "a string" if action.type is None else "a number or string"
        if separator is not None:
            expected = "an array or string"
        raise ConfigError(f"{key}: expected {expected}, got {_type_name(value)} {value!r}")
    elif action.type is None and not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {_type_name(value)} {value!r}")
    else:
        text = _text(value)
    if action.type is None:
        converted = text
    else:
        try:
            converted = action.type(text)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as e:
            raise ConfigError(f"{key}: {e}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(repr(c) for c in action.choices)
        raise ConfigError(f"{key}: invalid choice {converted!r} (choose from {choices})")
    return converted


def check(table: dict, parser: argparse.ArgumentParser) -> dict:
    """The options of ``table`` as the parser's destinations and values: unknown keys, a key
    given twice (``batch-size`` and ``batch_size``), wrong types and values, and two options
    of one mutually exclusive group raise :class:`ConfigError` (without the file's name).
    ``None`` (JSON ``null``) means "not given"."""
    _check_table(table, "table", "config.check")
    _check_parser(parser, "config.check")
    known = options(parser)
    values: dict = {}
    spelled: dict = {}
    for key, value in table.items():
        dest = str(key).replace("-", "_")
        if dest not in known:
            names = sorted({*known, *(d.replace("_", "-") for d in known)})
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown option {key!r}{hint}")
        if dest in spelled:
            raise ConfigError(f"{spelled[dest]!r} and {key!r} are the same option")
        spelled[dest] = key
        if value is None:
            continue
        values[dest] = _convert(known[dest], str(key), value)
    for group in _exclusive_groups(parser):
        given = [spelled[d] for d in group if d in values]
        if len(given) > 1:
            raise ConfigError(f"options {' and '.join(repr(g) for g in given)} exclude each other")
    return values


def from_file(path: PathLike, parser: argparse.ArgumentParser) -> dict:
    """:func:`read` then :func:`check`: the file's options as destination -> value. Every
    error is a :class:`ConfigError` whose message starts with the file's name."""
    path_argument(path, "config.from_file")
    _check_parser(parser, "config.from_file")
    table = read(path)
    try:
        return check(table, parser)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def resolve_exclusive(args: argparse.Namespace, given: dict, parser) -> None:
    """After parsing with a file's values as defaults: when the command line gave one option
    of a mutually exclusive group (``--epsilon``) and the file another (``density``), the
    command line wins and the file's option is dropped. Assumes every option of such a group
    defaults to None."""
    _check_table(given, "given", "config.resolve_exclusive")
    _check_parser(parser, "config.resolve_exclusive")
    for group in _exclusive_groups(parser):
        from_command_line = [d for d in group if d not in given and getattr(args, d) is not None]
        if from_command_line:
            for dest in group:
                if dest in given:
                    setattr(args, dest, None)


# --- writing a configuration back ------------------------------------------------------------


def _toml_value(value: Any, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v, key) for v in value) + "]"
    raise TypeError(
        f"[config.to_toml] config[{key!r}] cannot be written as TOML: got "
        f"{type(value).__name__} {show(value)}"
    )


def to_toml(config: dict) -> str:
    """A configuration (destination -> value, as recorded in a run's JSON output) as a TOML
    file that ``--config`` reads back; ``None`` values (not given) are left out."""
    _check_table(config, "config", "config.to_toml")
    lines = [
        f"{key} = {_toml_value(value, key)}" for key, value in config.items() if value is not None
    ]
    return "\n".join(lines) + "\n"


def to_arguments(config: dict, parser: argparse.ArgumentParser) -> list[str]:
    """A configuration as command-line arguments of ``parser`` (``--epochs=2``,
    ``--no-nesterov``, ``--sizes=32,16``); ``None`` values and unset flags are left out."""
    _check_table(config, "config", "config.to_arguments")
    _check_parser(parser, "config.to_arguments")
    known = options(parser)
    argv = []
    for key, value in config.items():
        if value is None:
            continue
        action = known.get(key)
        if action is None:
            raise ConfigError(f"unknown option {key!r}")
        option = action.option_strings[0]
        if action.nargs == 0:
            if isinstance(action, argparse.BooleanOptionalAction):
                argv.append(option if value else "--no-" + option[2:])
            elif value != action.default:
                argv.append(option)
            continue
        if isinstance(value, (list, tuple)):
            separator = getattr(action.type, LIST_SEPARATOR, ",")
            text = separator.join(_text(v) for v in value)
        else:
            text = _text(value)
        argv.append(f"{option}={text}")
    return argv


# --- the software a run used -----------------------------------------------------------------


def versions() -> dict:
    """Versions of truesparse, Python, NumPy, SciPy and MKL (when the core reports one), and
    the platform: what a run's JSON output records so that it can be repeated."""
    import numpy
    import scipy

    from . import _version

    found = {
        "truesparse": _version.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "mkl": None,
        "platform": platform.platform(),
    }
    try:
        from . import _core

        mkl_version = getattr(_core, "mkl_version", None)
        if mkl_version is not None:
            found["mkl"] = str(mkl_version() if callable(mkl_version) else mkl_version)
    except Exception:  # no compiled core (docs builds, the reference package alone)
        pass
    return found

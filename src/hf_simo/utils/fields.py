"""The one helper for fields of argument dataclasses, and the range checks their `__post_init__` runs.

Argument dataclasses (`hf_simo.training.arguments`, `hf_simo.merging.arguments`, ...) are plain dataclasses read by
`hf_simo.cli.parser.SimoArgumentParser` with `transformers.HfArgumentParser`'s rules (without importing
transformers): the field's name is the option (`--name`, and `--name-with-dashes`), its type the parsing, its `help`
the help text. The checks raise `OptionError`
naming the option as ``--name``, so a bad value fails at argument parsing, before any work, with one line.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, OptionError, TaskSpecError


def option(default: Any = dataclasses.MISSING, help: str = "", **metadata: Any) -> Any:
    """A dataclass field with `help` (and any other `HfArgumentParser` metadata, such as ``aliases``).

    Mutable defaults (lists, dicts, sets) become a `default_factory` returning a copy, so instances never share one.
    Without a default the option is required.
    """
    metadata = {"help": help, **metadata}
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def require_positive(instance: Any, *names: str, optional: bool = False, integer: bool = True) -> None:
    """`OptionError` naming the option (`--name`) when a field is not a positive integer (or number); with
    `optional`, None is allowed."""
    for name in names:
        value = getattr(instance, name)
        if value is None and optional:
            continue
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not value > 0 or not math.isfinite(value):
            what = "a positive integer" if integer else "a positive number"
            raise OptionError(f"--{name} must be {what}{' (or unset)' if optional else ''}, got {value!r}")


def require_non_negative(instance: Any, *names: str, integer: bool = True) -> None:
    """`OptionError` naming the option when a field is not an integer (or number) >= 0."""
    for name in names:
        value = getattr(instance, name)
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not 0 <= value < math.inf:
            raise OptionError(f"--{name} must be {'an integer' if integer else 'a number'} >= 0, got {value!r}")


def require_range(instance: Any, name: str, low: float, high: float, *, high_open: bool = True) -> None:
    """`OptionError` naming the option when a number is outside [low, high) (or [low, high])."""
    value = getattr(instance, name)
    inside = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and low <= value
        and (value < high if high_open else value <= high)
    )
    if not inside:
        raise OptionError(f"--{name} must be in [{low:g}, {high:g}{')' if high_open else ']'}, got {value!r}")


def require_choice(instance: Any, name: str, choices: tuple[str, ...] | list[str]) -> None:
    """`OptionError` naming the option when a field is not one of `choices`."""
    value = getattr(instance, name)
    if value not in choices:
        names = [str(c) for c in choices]
        listed = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
        raise OptionError(f"--{name} must be {listed}, got {value!r}")


def json_mapping(value: str | dict[str, Any] | None, name: str) -> dict[str, Any]:
    """An option given as JSON on the command line (`'{"density": 0.2}'`) or as a mapping in a YAML file."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return dict(value)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise TaskSpecError(f"{name} must be a JSON object, got {value!r} ({err.msg})") from err
    if not isinstance(parsed, dict):
        raise TaskSpecError(f"{name} must be a JSON object, got {value!r}")
    return parsed


def read_yaml_options(
    path: str | os.PathLike, known: Iterable[str], renamed: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The mapping of option names to values in the YAML file `path`; a key that is not in `known` is an
    `OptionError` naming the closest option (a typo must not silently fall back to a default), a key in `renamed`
    one naming its replacement."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise OptionError(f"config file {path} is not valid YAML ({' '.join(str(err).split())})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise OptionError(f"config file {path} must hold a mapping of option names to values")
    known = sorted(known)
    renamed = renamed or {}
    for key in data:
        if key in renamed:
            new = renamed[key]
            what = f"was renamed: use {new.lstrip('-')}" if new.startswith("--") else f"was removed: {new}"
            raise OptionError(f"config file {path}: `{key}` {what}")
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            raise OptionError(
                f"config file {path}: unknown option {key!r}{f' (did you mean {close[0]!r}?)' if close else ''}"
            )
    return data


def dataclass_from_yaml(cls: type, path: str | os.PathLike) -> Any:
    """An instance of the argument dataclass `cls` from a YAML file of its fields (unknown keys refused)."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    return cls(**read_yaml_options(path, names))


__all__ = [
    "dataclass_from_yaml",
    "json_mapping",
    "option",
    "read_yaml_options",
    "require_choice",
    "require_non_negative",
    "require_positive",
    "require_range",
]

"""`SimoArgumentParser`: every `hf-simo` verb and recipe parses its command line from its argument dataclasses.

The options of `transformers.HfArgumentParser` (one ``--name`` per dataclass field, plus ``--name-with-dashes``;
see `add_dataclass_field`) with what TRL's `TrlParser` adds and what hf_simo's verbs need:

- ``--config x.yaml``: the file's keys are fields (an unknown key is an `OptionError` naming the closest field), its
  values become the defaults, and the command line is parsed *over* them. The legacy form, ``x.yaml`` as the first
  argument, reads as ``--config x.yaml`` (verbs without positionals).
- List fields take one or more values and may be repeated: ``--task_checkpoints a b`` and
  ``--task_checkpoints a --task_checkpoints b`` are the same list, and a list on the command line replaces the
  YAML's (it does not append to it).
- ``positional``: fields given without ``--`` (``hf-simo evaluate MODEL``), in the declared order; they can also come
  from the YAML file.
- ``renamed``: old spellings (``{"revision": "--model_revision"}``) exit 2 naming the replacement, on the command
  line; in a YAML file they are an `OptionError` naming it.
- ``not_applicable``: fields of a shared dataclass the verb cannot honour (``{"train_samples": "no training split is
  built"}``): a value other than the default, from the command line or the YAML file, exits 2 with the reason.
- Abbreviations are off (``--output`` is not ``--output_dir``); an unknown option exits 2 with the closest one.

Range checks are the dataclasses' own `__post_init__` (`hf_simo.utils.fields`): `OptionError`, one line, exit 1.

Why not subclass `HfArgumentParser`: importing transformers costs about 1.5 s, which was all of every verb's start-up
(``hf-simo merge --help`` 1.8 s, benchmarks/RESULTS.md, "Command-line start-up"). This module imports the standard
library only; `tests/test_parser_parity.py` checks it against `HfArgumentParser` over every verb's dataclasses.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from copy import copy
from enum import Enum
from inspect import isclass
from pathlib import Path
from typing import Any, Literal, Union, get_type_hints

from ..utils.fields import read_yaml_options


# ---------------------------------------------------------------------------------- HfArgumentParser's options
# A mirror of `transformers.HfArgumentParser._parse_dataclass_field` (transformers 5.x, hf_argparser.py, Apache-2.0):
# the same option strings, types, nargs, defaults, choices, `required` and help for every field type it handles
# (str, int, float, bool, `X | None`, `bool | None`, `list[X]`, `Literal[...]`, `Enum`), including its quirks (a bool
# takes ``--x``, ``--x true/false``; a True default adds ``--no_x`` / ``--no-x``; `X | None` without a value is
# None, not required). Written here only because importing transformers was 1.5 s of every verb's start-up; the
# parity test (tests/test_parser_parity.py) compares both parsers on every verb and recipe.


def string_to_bool(v: str | bool) -> bool:
    """`transformers.hf_argparser.string_to_bool` (same name: argparse quotes it in errors)."""
    if isinstance(v, bool):
        return v
    if v.lower() in ("yes", "true", "t", "y", "1"):
        return True
    elif v.lower() in ("no", "false", "f", "n", "0"):
        return False
    else:
        raise argparse.ArgumentTypeError(
            f"Truthy value expected: got {v} but expected one of yes/no, true/false, t/f, y/n, 1/0 (case insensitive)."
        )


def make_choice_type_function(choices: list) -> Callable[[str], Any]:
    """Each choice's string form to the choice (`transformers.hf_argparser.make_choice_type_function`)."""
    str_to_choice = {str(choice): choice for choice in choices}
    return lambda arg: str_to_choice.get(arg, arg)


def _is_optional_bool(annotation: Any) -> bool:
    return annotation is bool or annotation == bool | None


def add_dataclass_field(parser: Any, field: dataclasses.Field, annotation: Any) -> None:
    """Add the option(s) `HfArgumentParser` adds for `field` (whose resolved type is `annotation`) to `parser` (an
    `ArgumentParser` or an argument group). Unlike transformers it leaves ``field.type`` as it is."""
    long_options = [f"--{field.name}"]
    if "_" in field.name:
        long_options.append(f"--{field.name.replace('_', '-')}")
    kwargs = dict(field.metadata)
    aliases = kwargs.pop("aliases", [])
    if isinstance(aliases, str):
        aliases = [aliases]
    kind = annotation
    origin_type = getattr(kind, "__origin__", kind)
    if origin_type is Union or isinstance(origin_type, types.UnionType):
        if str not in kind.__args__ and (len(kind.__args__) != 2 or type(None) not in kind.__args__):
            raise ValueError(
                "Only `Union[X, NoneType]` (i.e., `Optional[X]`) is allowed for `Union` because"
                " the argument parser only supports one type per argument."
                f" Problem encountered in field '{field.name}'."
            )
        if type(None) not in kind.__args__:  # Union[str, X]: X
            kind = kind.__args__[0] if kind.__args__[1] is str else kind.__args__[1]
            origin_type = getattr(kind, "__origin__", kind)
        elif bool not in kind.__args__:  # Optional[X] (but not Optional[bool]): X
            kind = kind.__args__[0] if isinstance(None, kind.__args__[1]) else kind.__args__[1]
            origin_type = getattr(kind, "__origin__", kind)
    bool_kwargs = {}
    if origin_type is Literal or (isinstance(kind, type) and issubclass(kind, Enum)):
        kwargs["choices"] = kind.__args__ if origin_type is Literal else [x.value for x in kind]
        kwargs["type"] = make_choice_type_function(kwargs["choices"])
        if field.default is not dataclasses.MISSING:
            kwargs["default"] = field.default
        else:
            kwargs["required"] = True
    elif _is_optional_bool(kind):
        bool_kwargs = copy(kwargs)  # for the `--no_x` complement, added after `--x` (same dest: order matters)
        kwargs["type"] = string_to_bool
        if kind is bool or (field.default is not None and field.default is not dataclasses.MISSING):
            kwargs["default"] = False if field.default is dataclasses.MISSING else field.default
            kwargs["nargs"] = "?"  # `--x` alone is True, `--x false` False
            kwargs["const"] = True
    elif isclass(origin_type) and issubclass(origin_type, list):
        kwargs["type"] = kind.__args__[0]
        kwargs["nargs"] = "+"
        if field.default_factory is not dataclasses.MISSING:
            kwargs["default"] = field.default_factory()
        elif field.default is dataclasses.MISSING:
            kwargs["required"] = True
    else:
        kwargs["type"] = kind
        if field.default is not dataclasses.MISSING:
            kwargs["default"] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            kwargs["default"] = field.default_factory()
        else:
            kwargs["required"] = True
    parser.add_argument(*long_options, *aliases, **kwargs)
    if field.default is True and _is_optional_bool(kind):
        bool_kwargs["default"] = False
        parser.add_argument(
            f"--no_{field.name}",
            f"--no-{field.name.replace('_', '-')}",
            action="store_false",
            dest=field.name,
            **bool_kwargs,
        )


def resolved_types(dtype: type) -> dict[str, Any]:
    """The field types of the dataclass `dtype`, resolved (its module may use ``from __future__ import
    annotations``)."""
    try:
        return get_type_hints(dtype)
    except NameError as err:
        raise RuntimeError(
            f"Type resolution failed for {dtype}. Try declaring the class in global scope or "
            "removing line of `from __future__ import annotations` which opts in Postponed "
            "Evaluation of Annotations (PEP 563)"
        ) from err


class _ReplaceThenExtend(argparse.Action):
    """A list option: the first use in a command line replaces the default (the field's or the YAML's), later uses
    extend it."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        items = [] if current is None or current is self.default else list(current)
        items.extend(values if isinstance(values, list) else [values])
        setattr(namespace, self.dest, items)


class SimoArgumentParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` with `HfArgumentParser`'s options for `dataclass_types` (`add_dataclass_field`;
    help shows defaults, as there), ``--config``, positionals, renamed and not-applicable options (see the module
    docstring). `parse(argv)` returns one instance per dataclass, in order."""

    def __init__(
        self,
        dataclass_types: Iterable[type],
        *,
        prog: str | None = None,
        positional: Sequence[str] | Mapping[str, str] = (),
        not_applicable: Mapping[str, str] | None = None,
        renamed: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.positional = dict(positional) if isinstance(positional, Mapping) else {n: n.upper() for n in positional}
        self.not_applicable = dict(not_applicable or {})
        self.renamed = dict(renamed or {})
        self._positional_fields: dict[str, tuple[Any, dataclasses.Field, Any]] = {}
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)  # as HfArgumentParser
        super().__init__(prog=prog, **kwargs)
        self.dataclass_types = list(dataclass_types)
        for dtype in self.dataclass_types:
            self._add_dataclass_arguments(dtype)
        fields = {f.name for t in self.dataclass_types for f in dataclasses.fields(t)}
        unknown = [name for name in [*self.positional, *self.not_applicable] if name not in fields]
        if unknown:
            raise ValueError(f"{prog}: {unknown} are not fields of {[t.__name__ for t in self.dataclass_types]}")
        for name, metavar in self.positional.items():  # in the declared order
            self._add_positional(name, metavar)
        self.add_argument(
            "--config",
            metavar="FILE.yaml",
            default=None,
            help="YAML file of these options (keys = option names); options on the command line override it.",
        )

    # ------------------------------------------------------------------------------------------ building

    def _add_dataclass_arguments(self, dtype: type) -> None:
        """`HfArgumentParser._add_dataclass_arguments`: every init field, in a group if `_argument_group_name`."""
        parser = (
            self.add_argument_group(dtype._argument_group_name) if hasattr(dtype, "_argument_group_name") else self
        )
        hints = resolved_types(dtype)
        for field in dataclasses.fields(dtype):
            if field.init:
                self._add_field(parser, field, hints[field.name])

    def _add_field(self, parser: Any, field: dataclasses.Field, annotation: Any) -> None:
        if field.name in self.positional:
            self._positional_fields[field.name] = (parser, field, annotation)
            return
        scratch = argparse.ArgumentParser(add_help=False)
        add_dataclass_field(scratch, field, annotation)
        for action in scratch._actions:
            if action.nargs == "+" and type(action) is argparse._StoreAction:  # a list field: repeatable
                action = _ReplaceThenExtend(
                    option_strings=action.option_strings,
                    dest=action.dest,
                    nargs="+",
                    default=action.default,
                    type=action.type,
                    choices=action.choices,
                    required=action.required,
                    help=action.help,
                    metavar=action.metavar,
                )
            parser._add_action(action)

    def _add_positional(self, name: str, metavar: str) -> None:
        parser, field, annotation = self._positional_fields[name]
        scratch = argparse.ArgumentParser(add_help=False)
        add_dataclass_field(scratch, field, annotation)
        model = next(a for a in scratch._actions if a.dest == name)
        is_list = model.nargs == "+"
        parser.add_argument(
            name,
            metavar=metavar,
            nargs="*" if is_list else "?",
            type=model.type,
            choices=model.choices,
            default=model.default,
            help=model.help,
        )

    # ------------------------------------------------------------------------------------------ parsing

    def error(self, message: str):
        """A usage error: the usage line, the message, exit status 2 (argparse's convention)."""
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse(self, argv: Sequence[str] | None = None) -> tuple[Any, ...]:
        """The dataclass instances for `argv` (default `sys.argv[1:]`): YAML defaults, then the command line."""
        argv = list(sys.argv[1:] if argv is None else argv)
        if argv and argv[0].endswith((".yaml", ".yml")) and not self.positional:
            argv = ["--config", *argv]  # the legacy form `recipe.py x.yaml` (options after it override it)
        self._refuse_renamed(argv)
        config_path = self._config_path(argv)
        saved = [(action, action.default, action.required) for action in self._actions]
        try:
            if config_path is not None:
                config = self._read_config(config_path)
                for action in self._actions:  # every action of a field (a bool has --x and --no_x)
                    if action.dest in config:
                        action.default, action.required = config[action.dest], False
            namespace, remaining = self.parse_known_args(argv)
        finally:
            for action, default, required in saved:
                action.default, action.required = default, required
        if remaining:
            self._unrecognized(remaining)
        values = vars(namespace)
        values.pop("config", None)
        for name in self.positional:
            if values.get(name) in (None, []) and self._is_required(name):
                self.error(f"the following arguments are required: {self.positional[name]}")
        instances = []
        for dtype in self.dataclass_types:
            keys = {f.name for f in dataclasses.fields(dtype) if f.init}
            instances.append(dtype(**{k: v for k, v in values.items() if k in keys}))
        self._refuse_not_applicable(instances)
        return tuple(instances)

    def _is_required(self, name: str) -> bool:
        field = self._positional_fields[name][1]
        return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING

    def _config_path(self, argv: list[str]) -> Path | None:
        pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        pre.add_argument("--config", default=None)
        known, _ = pre.parse_known_args(argv)
        return None if known.config is None else Path(known.config)

    def _read_config(self, path: Path) -> dict[str, Any]:
        known = {a.dest for a in self._actions if a.dest not in ("help", "config")}
        return read_yaml_options(path, known, self.renamed)

    def _renamed_message(self, old: str) -> str:
        new = self.renamed[old]
        return f"was renamed: use {new}" if new.startswith("--") else f"was removed: {new}"

    def _refuse_renamed(self, argv: list[str]) -> None:
        for token in argv:
            if token == "--":
                break
            if token.startswith("--"):
                name = token[2:].split("=", 1)[0].replace("-", "_")
                if name in self.renamed and not self._is_option(token.split("=", 1)[0]):
                    self.error(f"--{name} {self._renamed_message(name)}")

    def _is_option(self, option: str) -> bool:
        return option in self._option_string_actions

    def _unrecognized(self, remaining: list[str]) -> None:
        known = sorted(self._option_string_actions)
        hints = []
        for word in remaining:
            close = difflib.get_close_matches(word.split("=")[0], known, n=1) if word.startswith("-") else []
            hints.append(f"{word} (did you mean {close[0]}?)" if close else word)
        self.error(f"unrecognized arguments: {' '.join(hints)}")

    def _refuse_not_applicable(self, instances: Sequence[Any]) -> None:
        for instance in instances:
            for f in dataclasses.fields(instance):
                if f.name not in self.not_applicable:
                    continue
                default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
                if getattr(instance, f.name) != default:
                    reason = self.not_applicable[f.name]
                    self.error(f"--{f.name} does not apply to {self.prog}{f' ({reason})' if reason else ''}")


def parse_args(dataclass_types: Sequence[type], argv: Sequence[str] | None = None, **kwargs: Any) -> tuple[Any, ...]:
    """`SimoArgumentParser(dataclass_types, **kwargs).parse(argv)` (``prog`` defaults to the script's name)."""
    kwargs.setdefault("prog", os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else None)
    return SimoArgumentParser(dataclass_types, **kwargs).parse(argv)


__all__ = ["SimoArgumentParser", "add_dataclass_field", "parse_args", "resolved_types", "string_to_bool"]

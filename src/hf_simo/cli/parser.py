"""`SimoArgumentParser`: every `hf-simo` verb and recipe parses its command line from its argument dataclasses.

A `transformers.HfArgumentParser` (one ``--name`` per dataclass field, plus ``--name-with-dashes``) with what TRL's
`TrlParser` adds and what hf_simo's verbs need:

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
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser

from ..utils.fields import read_yaml_options


class _ReplaceThenExtend(argparse.Action):
    """A list option: the first use in a command line replaces the default (the field's or the YAML's), later uses
    extend it."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        items = [] if current is None or current is self.default else list(current)
        items.extend(values if isinstance(values, list) else [values])
        setattr(namespace, self.dest, items)


class SimoArgumentParser(HfArgumentParser):
    """An `HfArgumentParser` over `dataclass_types` with ``--config``, positionals, renamed and not-applicable
    options (see the module docstring). `parse(argv)` returns one instance per dataclass, in order."""

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
        self._positional_fields: dict[str, tuple[Any, dataclasses.Field]] = {}
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(list(dataclass_types), prog=prog, **kwargs)
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

    def _parse_dataclass_field(self, parser, field: dataclasses.Field) -> None:  # an instance method here
        if field.name in self.positional:
            self._positional_fields[field.name] = (parser, field)
            return
        scratch = argparse.ArgumentParser(add_help=False)
        HfArgumentParser._parse_dataclass_field(scratch, field)
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
        parser, field = self._positional_fields[name]
        scratch = argparse.ArgumentParser(add_help=False)
        HfArgumentParser._parse_dataclass_field(scratch, field)
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


__all__ = ["SimoArgumentParser", "parse_args"]

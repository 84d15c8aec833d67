"""`SimoArgumentParser` builds every verb's and recipe's options without transformers; `transformers.HfArgumentParser`
over the same dataclasses is the reference: the same actions, the same option strings in `--help`, and equal dataclass
instances (or the same error) for argument lists generated from the fields' types (defaults, every bool form, lists,
optionals, dashed aliases, `--x=value`), and for positionals given as options to the reference."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import enum
import importlib
import io
import pkgutil
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest
from transformers import HfArgumentParser

import hf_simo.cli
from hf_simo.cli.parser import SimoArgumentParser
from hf_simo.cli.runner import Command
from hf_simo.utils.fields import option
from hf_simo.utils.logging import CommonArguments


RECIPES = Path(__file__).resolve().parents[1] / "recipes"
PROG = "prog"  # both parsers' name, so that their error lines compare


def _commands() -> dict[str, Command]:
    """prog -> Command, every `Command` object of the `hf_simo.cli` modules (verbs and recipes)."""
    found: dict[str, Command] = {}
    for info in pkgutil.iter_modules(hf_simo.cli.__path__):
        if info.name == "__main__":
            continue
        module = importlib.import_module(f"hf_simo.cli.{info.name}")
        for value in vars(module).values():
            if isinstance(value, Command):
                found.setdefault(value.prog, value)
    return found


COMMANDS = _commands()


def _types(command: Command) -> list[type]:
    """What `Command.parser` parses: its dataclasses plus `CommonArguments`."""
    return [*command.arguments, *([] if CommonArguments in command.arguments else [CommonArguments])]


def test_every_verb_and_recipe_is_compared():
    verbs = {f"hf-simo {verb}" for verb in hf_simo.cli.VERBS}
    assert verbs <= set(COMMANDS)
    modules = {type(c).__module__ for c in COMMANDS.values()} | {c.run.__module__ for c in COMMANDS.values()}
    for recipe in sorted(RECIPES.glob("*.py")):
        imported = {
            node.module
            for node in ast.walk(ast.parse(recipe.read_text(encoding="utf-8")))
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hf_simo.cli.")
        }
        assert imported and imported <= modules, recipe.name  # a recipe is a thin script over a compared Command


# ------------------------------------------------------------------------------------------ argument lists


def _sample(kind: Any, default: Any) -> list[list[str]]:
    """Values (each a list of words) for a non-bool field of type `kind` (Optional stripped)."""
    origin = get_origin(kind)
    if origin is list:
        (item,) = get_args(kind)
        words = [str(v) for v in default] if isinstance(default, list) and default else _sample(item, None)[0]
        return [words, words[:1], [*words, *words]]
    if origin is Literal:
        return [[str(choice)] for choice in get_args(kind)]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return [[str(member.value)] for member in kind]
    values = [] if default is None or isinstance(default, bool) else [str(default)]
    if kind is int:
        values += ["3", "0"]
    elif kind is float:
        values += ["0.5", "2", "1e-3"]
    else:
        values += ["abc", ""]
    return [[value] for value in dict.fromkeys(values)]


def _strip_optional(kind: Any) -> Any:
    args = get_args(kind)
    if type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None))
    return kind


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None if field.default is dataclasses.MISSING else field.default


def _forms(field: dataclasses.Field, declared: Any) -> list[list[str]]:
    """Every way to give `field` on the command line that HfArgumentParser accepts (and a few it refuses)."""
    names = [f"--{field.name}"] + ([f"--{field.name.replace('_', '-')}"] if "_" in field.name else [])
    kind = _strip_optional(declared)
    if kind is bool:
        out = []
        if declared is bool or field.default is not None:  # `bool`, or `bool | None` with a bool default
            out += [[name] for name in names]
        out += [[names[0], word] for word in ("true", "false", "yes", "no", "T", "f", "1", "0", "maybe")]
        out += [[f"{names[-1]}=false"]]
        if field.default is True:
            out += [[f"--no_{field.name}"], [f"--no-{field.name.replace('_', '-')}"]]
        return out
    out = []
    for index, words in enumerate(_sample(kind, _default(field))):
        out.append([names[index % len(names)], *words])
    if get_origin(kind) is not list:
        out.append([f"{names[-1]}={out[0][1]}"])
    out.append([names[0]])  # no value: an error for both
    return out


def _fields(types: list[type]) -> list[tuple[dataclasses.Field, Any]]:
    out = []
    for dtype in types:
        hints = get_type_hints(dtype)
        out += [(field, hints[field.name]) for field in dataclasses.fields(dtype) if field.init]
    return out


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def argument_lists(types: list[type]) -> list[list[str]]:
    """The required fields (each given once) plus nothing, or plus one form of one field."""
    fields = _fields(types)
    base = []
    for field, kind in fields:
        if _required(field):
            base += _forms(field, kind)[0]
    lists = [base]
    for field, kind in fields:
        for form in _forms(field, kind):
            rest = base
            if _required(field):  # replace its value
                start = base.index(f"--{field.name}")
                stop = next((i for i in range(start + 1, len(base)) if base[i].startswith("--")), len(base))
                rest = base[:start] + base[stop:]
            lists.append([*rest, *form])
    return lists


# ------------------------------------------------------------------------------------------ outcomes


def _outcome(parse, argv: list[str]) -> tuple[str, Any]:
    """("ok", the instances' fields) or ("exit", code, the error line) or ("error", type, message)."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            instances = parse(argv)
    except SystemExit as exit_:
        lines = stderr.getvalue().strip().splitlines()
        return ("exit", exit_.code, lines[-1] if lines else "")
    except Exception as err:  # the dataclasses' own checks (OptionError, ...): the same for both
        return ("error", type(err).__name__, str(err))
    return ("ok", [(type(i).__name__, {k: (type(v), v) for k, v in vars(i).items()}) for i in instances])


def reference(types: list[type]) -> HfArgumentParser:
    return HfArgumentParser(types, prog=PROG, allow_abbrev=False)


def _reference_parse(types: list[type]):
    parser = reference(types)
    return lambda argv: parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)


@pytest.mark.parametrize("prog", sorted(COMMANDS))
def test_the_same_instances_or_errors_as_hf_argument_parser(prog):
    types = _types(COMMANDS[prog])
    ours = SimoArgumentParser(types, prog=PROG)
    theirs = _reference_parse(types)
    lists = argument_lists(types)
    outcomes = [(_outcome(ours.parse, argv), _outcome(theirs, argv)) for argv in lists]
    for argv, (mine, ref) in zip(lists, outcomes):
        assert mine == ref, argv
    parsed = sum(mine[0] == "ok" for mine, _ in outcomes)
    assert parsed >= len(lists) / 2, (parsed, len(lists))  # most lists are valid: the comparison is of values


@pytest.mark.parametrize("prog", sorted(p for p, c in COMMANDS.items() if c.positional))
def test_positionals_parse_like_the_reference_options(prog):
    """`hf-simo evaluate MODEL ...` equals the reference's ``--model_name_or_path MODEL ...`` (usage errors: the
    same exit status; their messages name the positional differently)."""
    command = COMMANDS[prog]
    types = _types(command)
    ours, theirs = command.parser(), _reference_parse(types)
    checked = 0
    for argv in argument_lists(types):
        groups = _split(argv)
        if any({name, name.removeprefix("no_")} & set(command.not_applicable) for name, _, _ in groups):
            continue  # refused by the command (exit 2), not by the reference
        if any(name in command.positional and not (values and values[0]) for name, _, values in groups):
            continue  # `--images` without a value, or an empty string: no positional spelling
        given = {name: values for name, _, values in groups}
        front = [word for name in command.positional for word in given.get(name, [])]
        rest = [word for name, words, _ in groups if name not in command.positional for word in words]
        mine, ref = _outcome(ours.parse, [*front, *rest]), _outcome(theirs, argv)
        assert (mine if mine[0] != "exit" else mine[:2]) == (ref if ref[0] != "exit" else ref[:2]), argv
        checked += mine[0] == "ok"
    assert checked > 0


def _split(argv: list[str]) -> list[tuple[str, list[str], list[str]]]:
    """[(field name, its words, its values)] of an argument list of ``--name value...`` groups."""
    groups: list[tuple[str, list[str], list[str]]] = []
    for word in argv:
        if word.startswith("-"):
            name, equals, value = word.lstrip("-").partition("=")
            groups.append((name.replace("-", "_"), [word], [value] if equals else []))
        else:
            groups[-1][1].append(word)
            groups[-1][2].append(word)
    return groups


# ------------------------------------------------------------------------------------------ actions and help


def _actions(parser) -> dict[str, tuple]:
    """option string -> what argparse does with it (the list action's class aside: ours repeats, see test_parser)."""
    out = {}
    for action in parser._actions:
        kind = action.type
        kind = getattr(kind, "__name__", kind)
        row = (action.dest, action.nargs, repr(action.const), repr(action.default), kind, action.choices)
        row += (action.required,)
        row += (action.help, action.metavar, type(action).__name__.replace("_ReplaceThenExtend", "_StoreAction"))
        for string in action.option_strings:
            out[string] = row
    return out


def _options_section(text: str, without: str = "--config") -> list[str]:
    """The lines of a --help text after "options:", without the entry of the option `without`."""
    lines, skipping = [], False
    for line in text.split("options:", 1)[1].splitlines():
        if re.match(r"^  -", line):
            skipping = line.split()[0] == without
        if not skipping:
            lines.append(line)
    return lines


def _help_options(text: str) -> set[str]:
    """The option strings of a --help text's option lines (not those mentioned in help strings)."""
    return {o for line in text.splitlines() if re.match(r"^  -", line) for o in re.findall(r"--?[\w-]+", line)}


@pytest.mark.parametrize("prog", sorted(COMMANDS))
def test_the_same_actions_and_help_as_hf_argument_parser(prog):
    types = _types(COMMANDS[prog])
    ours, theirs = SimoArgumentParser(types, prog=PROG), reference(types)
    mine = _actions(ours)
    assert mine.pop("--config")[0] == "config"
    assert mine == _actions(theirs)
    assert _help_options(ours.format_help()) - {"--config"} == _help_options(theirs.format_help())
    assert _options_section(ours.format_help()) == _options_section(theirs.format_help())  # help texts, defaults
    assert len(_help_options(theirs.format_help())) > len(_fields(types))  # dashed aliases, -h


@pytest.mark.parametrize("prog", sorted(p for p, c in COMMANDS.items() if c.positional))
def test_positional_fields_leave_the_options_of_help(prog):
    command = COMMANDS[prog]
    theirs = _help_options(reference(_types(command)).format_help())
    dropped = {o for name in command.positional for o in (f"--{name}", f"--{name.replace('_', '-')}")}
    assert _help_options(command.parser().format_help()) - {"--config"} == theirs - dropped


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class AllKinds:
    """The field types HfArgumentParser handles that no verb uses yet (and some that they do)."""

    required_literal: Literal["x", "y"] = option(help="a required Literal")
    count: int = option(help="a required int")
    literal: Literal["a", "b", 3] = option("a", "a Literal")
    colour: Colour = option(Colour.RED, "an Enum")
    maybe_flag: bool | None = option(True, "bool | None with a True default")
    floats: list[float] | None = option(None, "an optional list")
    aliased: str = option("s", "with aliases", aliases=["-a", "--also"])


def test_the_field_types_no_verb_uses_yet():
    types = [AllKinds]
    ours, theirs = SimoArgumentParser(types, prog=PROG), _reference_parse(types)
    mine = _actions(ours)
    mine.pop("--config")
    assert mine == _actions(reference(types))
    lists = argument_lists(types)
    lists += [["--required_literal", "x", "--count", "1", "-a", "t"], ["--count", "1", "--required_literal", "z"]]
    for argv in lists:
        assert _outcome(ours.parse, argv) == _outcome(theirs, argv), argv
    (_, [(_, values)]) = _outcome(ours.parse, ["--required_literal", "y", "--count", "2", "--literal", "3"])
    assert values["literal"] == (int, 3) and values["colour"] == (Colour, Colour.RED)  # the choice, not "3"

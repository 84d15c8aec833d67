"""Running a verb or recipe: parse its dataclasses, apply the common options, run, report errors.

A verb module (``hf_simo/cli/<verb>.py``) declares one `Command`::

    COMMAND = Command(
        "hf-simo realign",
        (RealignArguments, DataArguments, RunArguments),  # its options, one source of truth
        run,                                              # run(realign, data, run_args) -> result
        not_applicable={...}, renamed={...}, positional=(),
    )
    main = COMMAND.main  # recipes/realign.py: `from hf_simo.cli.realign import main`

`CommonArguments` (``--log_level``, ``--disable_tqdm``, ``--debug``) is added to every command and applied around
the run (verbosity, progress bars; restored after), never passed to `run`. `run` imports the library inside its
body, so a verb module costs no torch until it runs.

Errors: a `SimoError` (the user's input: a bad option, a missing file, a checkpoint that does not fit) becomes one
line, ``<prog>: error: <message>``, exit 1 — its traceback with ``--debug``; a usage error exits 2 (argparse); any
other exception is a bug and propagates with its traceback and a note saying so.

- `Command.exit_code(argv) -> int` is what ``hf-simo <verb>`` runs (0, 1 or 2; the result is dropped);
- `Command.main(argv) -> result` is what a recipe runs: the job's result, or `SystemExit("error: ...")` (exit 1).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SimoError
from ..utils.logging import CommonArguments
from .parser import SimoArgumentParser


EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
PUSH_FLAGS = ("--push_to_hub", "--push-to-hub")
BOOLEAN_WORDS = {"true", "false", "yes", "no", "t", "f", "y", "n", "1", "0"}


def refuse_push_to_hub_with_a_repo(parser: Any, words: Sequence[str]) -> None:
    """``--push_to_hub ORG/NAME`` (or ``=ORG/NAME``), the spelling of before issue 11, exits 2 naming the new pair:
    ``--push_to_hub`` is transformers' flag and the repo is ``--hub_model_id`` (argparse alone would say "Truthy
    value expected")."""
    for index, word in enumerate(words):
        flag, equals, value = word.partition("=")
        if flag not in PUSH_FLAGS:
            continue
        if not equals and index + 1 < len(words) and not words[index + 1].startswith("-"):
            value = words[index + 1]
        if value and value.lower() not in BOOLEAN_WORDS:
            parser.error(f"--push_to_hub is a flag now: use --push_to_hub --hub_model_id {value} (the Hub repo)")


def one_line(err: BaseException) -> str:
    """An error's message on one line (a `KeyError`'s without the quotes `str()` adds)."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(str(text).split())


def bug_note(prog: str) -> str:
    return f"{prog}: unexpected error - this is a bug in hf_simo; please report it with the traceback above"


def mark_as_bug(err: BaseException, prog: str) -> None:
    """Add the "this is a bug" line under the traceback Python prints (before it, on Python 3.10)."""
    if hasattr(err, "add_note"):
        err.add_note(bug_note(prog))
    else:  # pragma: no cover - Python 3.10
        print(bug_note(prog), file=sys.stderr)


@dataclass(frozen=True)
class Command:
    """One verb or recipe: its program name, its argument dataclasses and the function that runs them."""

    prog: str
    arguments: tuple[type, ...]
    run: Callable[..., Any]
    positional: Sequence[str] | Mapping[str, str] = ()
    not_applicable: Mapping[str, str] = field(default_factory=dict)
    renamed: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None

    def parser(self) -> SimoArgumentParser:
        """The parser of this command (built per call: `--config` sets its defaults)."""
        types = [*self.arguments, *([] if CommonArguments in self.arguments else [CommonArguments])]
        return SimoArgumentParser(
            types,
            prog=self.prog,
            description=self.description,
            positional=self.positional,
            not_applicable=self.not_applicable,
            renamed=self.renamed,
        )

    def parse(self, argv: Sequence[str] | None = None) -> tuple[tuple[Any, ...], CommonArguments]:
        """(the instances of `arguments`, the `CommonArguments`) for `argv`."""
        parsed = self.parser().parse(argv)
        common = next(p for p in parsed if isinstance(p, CommonArguments))
        return tuple(p for p in parsed if not isinstance(p, CommonArguments)), common

    def _call(self, argv: Sequence[str] | None, state: dict[str, bool]) -> Any:
        parsed, common = self.parse(argv)
        state["debug"] = common.debug  # also from --config
        with common.applied():
            try:
                return self.run(*parsed)
            except SimoError:
                raise
            except Exception as err:
                mark_as_bug(err, self.prog)
                raise

    def main(self, argv: Sequence[str] | None = None) -> Any:
        """Run as a recipe: the job's result; a `SimoError` exits with ``error: <one line>`` (status 1) unless
        ``--debug``."""
        state = {"debug": "--debug" in (sys.argv[1:] if argv is None else argv)}  # before parsing succeeds
        try:
            return self._call(argv, state)
        except SimoError as err:
            if state["debug"]:
                raise
            raise SystemExit(f"error: {one_line(err)}") from err

    def exit_code(self, argv: Sequence[str] | None = None) -> int:
        """Run as ``hf-simo <verb>``: 0, 1 (a `SimoError`, one line on stderr; ``--debug``: its traceback) or 2."""
        state = {"debug": "--debug" in (sys.argv[1:] if argv is None else argv)}
        try:
            result = self._call(argv, state)
        except SystemExit as exit_:  # usage errors (2), --help (0)
            if isinstance(exit_.code, str):
                print(f"{self.prog}: {exit_.code}", file=sys.stderr)
                return EXIT_FAILURE
            return EXIT_OK if exit_.code is None else int(exit_.code)
        except SimoError as err:
            if state["debug"]:
                raise
            print(f"{self.prog}: error: {one_line(err)}", file=sys.stderr)
            return EXIT_FAILURE
        return result if isinstance(result, int) and not isinstance(result, bool) else EXIT_OK


__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "Command", "bug_note", "mark_as_bug", "one_line"]

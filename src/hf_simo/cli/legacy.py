"""Transition support: a verb whose options are still hand-written `argparse` (only ``merge`` now), until it is
generated from its dataclasses like the others (`hf_simo.cli.runner.Command`).

A legacy verb module defines `HELP` (one line), `configure_parser(parser)` (adds its options) and `run(args) -> int`.
Its user errors are reported in one line as before issue 11; that includes the bare built-ins the verbs raised for
bad paths and values (`LEGACY_USER_ERRORS`), which a dataclass verb reports only as `SimoError`s. Removed when merge
moves (issue 11, WP-A).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from types import ModuleType

from ..errors import SimoError
from .runner import EXIT_FAILURE, EXIT_USAGE, one_line


# the built-ins legacy verbs raise for a bad path, name or value (a dataclass verb only catches SimoError)
LEGACY_USER_ERRORS = (SimoError, FileExistsError, FileNotFoundError, KeyError, ValueError)


class VerbParser(argparse.ArgumentParser):
    """argparse with 'did you mean' for option and verb typos; usage errors exit with code 2."""

    def error(self, message: str):
        if "unrecognized arguments" in message:
            known = [option for action in self._actions for option in action.option_strings]
            for word in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(word.split("=")[0], known, n=1)
                if close:
                    message += f" (did you mean {close[0]}?)"
        elif "invalid choice" in message:
            for action in self._actions:
                if isinstance(action, argparse._SubParsersAction):
                    wrong = message.split("invalid choice: ", 1)[1].split("'")[1]
                    close = difflib.get_close_matches(wrong, list(action.choices), n=1)
                    if close:
                        message += f"; did you mean {close[0]!r}?"
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(module: ModuleType, verb: str) -> VerbParser:
    parser = VerbParser(prog=f"hf-simo {verb}", description=module.HELP)
    module.configure_parser(parser)
    return parser


def run_legacy_verb(module: ModuleType, verb: str, argv: Sequence[str], debug: bool = False) -> int:
    """Parse `argv` with the verb's hand-written parser and run it; user errors in one line (exit 1)."""
    args = build_parser(module, verb).parse_args(list(argv))
    args.debug = debug  # verbs that report their own errors (merge) re-raise them
    try:
        return module.run(args)
    except LEGACY_USER_ERRORS as err:
        if debug:
            raise
        print(f"hf-simo {verb}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_FAILURE


__all__ = ["LEGACY_USER_ERRORS", "VerbParser", "build_parser", "run_legacy_verb"]

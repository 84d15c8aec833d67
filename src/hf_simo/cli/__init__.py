"""`hf-simo`: the command line.

    hf-simo demo            the whole pipeline on the embedded benchmark, from nothing (the README's main job)
    hf-simo merge           merge single-task checkpoints into one SimoModel folder
    hf-simo realign         merge, re-align on the validation split, evaluate, save (= recipes/realign.py)
    hf-simo evaluate        metrics of a SimoModel on a dataset split
    hf-simo relationships   task relationships: sweep θ_0 + λ·τ_t and plot every task's normalized performance
    hf-simo card            (re)write the model card of a saved model folder
    hf-simo push            publish a saved model folder to the Hub
    hf-simo predict         predict every task for image files: one PNG per image and task, and a grid

Exit codes: 0 success, 1 the command failed (bad input, a checkpoint that does not fit, ...: one line on stderr, no
traceback; `--debug` shows it), 2 the command line itself is wrong (unknown verb or option).

This module imports only the standard library (and hf_simo's lazy `__init__`): ``hf-simo --help`` and
``hf-simo --version`` load nothing else, and
``hf-simo <verb>`` imports that verb's module only (`VERBS`). Every verb module (``hf_simo/cli/<verb>.py``)
declares ``COMMAND = Command(...)``: its options generated from dataclasses (`hf_simo.cli.runner`).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Sequence

from ..version import __version__


# verb -> (module, one-line help); the module is imported only when the verb runs
VERBS = {
    "demo": ("hf_simo.cli.demo", "the whole pipeline on the embedded benchmark, from nothing"),
    "merge": ("hf_simo.cli.merge", "merge single-task checkpoints into one multi-task SimoModel"),
    "realign": ("hf_simo.cli.realign", "merge, re-align on validation, evaluate on test, save"),
    "evaluate": ("hf_simo.cli.evaluate", "metrics of a SimoModel on a dataset split"),
    "relationships": (
        "hf_simo.cli.relationships",
        "task relationships: sweep θ_0 + λ·τ_t, plot normalized performance against λ",
    ),
    "card": ("hf_simo.cli.card", "(re)write the model card (README.md) of a saved model folder"),
    "push": ("hf_simo.cli.push", "publish a saved model folder to the Hugging Face Hub"),
    "predict": ("hf_simo.cli.predict", "predict every task for image files and write PNGs"),
    "export": ("hf_simo.cli.export", "one task of a SimoModel back to its transformers class (depth estimation)"),
}
EXIT_USAGE = 2


class _TopParser(argparse.ArgumentParser):
    """The top level: --help, --version, --debug and the verb; a verb typo exits 2 with the closest verb."""

    def error(self, message: str):
        if "invalid choice" in message:
            wrong = message.split("invalid choice: ", 1)[1].split("'")[1]
            close = difflib.get_close_matches(wrong, list(VERBS), n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser (verbs listed, their options parsed by each verb's own parser)."""
    parser = _TopParser(
        prog="hf-simo",
        description="Build one multi-task dense-prediction model from single-task DINOv2 checkpoints (SIMO merging).",
        epilog="Run `hf-simo <verb> --help` for the options of a verb.",
    )
    parser.add_argument("--version", action="version", version=f"hf_simo {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of errors")
    verbs = parser.add_subparsers(dest="command", metavar="<verb>")
    for name, (_, help) in VERBS.items():
        verbs.add_parser(name, help=help, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    position = next((i for i, word in enumerate(argv) if not word.startswith("-")), None)
    if position is None or argv[position] not in VERBS:  # --help, --version, no verb, or a verb typo
        parser = build_parser()
        parser.parse_args(argv[: position + 1] if position is not None else argv)
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    top, verb, rest = argv[:position], argv[position], argv[position + 1 :]
    unknown = [word for word in top if word != "--debug"]
    if unknown:
        build_parser().parse_args([*unknown, verb])  # exits 2 naming them (or 0 for --help / --version)
    debug = "--debug" in top
    module = importlib.import_module(VERBS[verb][0])
    if debug and "--debug" not in rest:  # --debug is one of every command's options
        rest = [*rest, "--debug"]
    return module.COMMAND.exit_code(rest)


__all__ = ["VERBS", "build_parser", "main"]

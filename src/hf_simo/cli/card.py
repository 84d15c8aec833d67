"""`hf-simo card FOLDER`: (re)write the model card (README.md) of a saved model folder (hand-written argparse until it
moves to dataclasses; see `hf_simo.cli.legacy`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .runner import EXIT_OK


HELP = "(re)write the model card (README.md) of a saved model folder"


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the verb's options to `parser`."""
    parser.add_argument("folder", help="the model folder")
    parser.add_argument("--results", help="JSON of evaluation results (hf-simo evaluate --output, or realign's)")
    parser.add_argument("--dataset-name", help="dataset the results were measured on")
    parser.add_argument("--repo-id", help="Hub repo id shown in the usage snippet")
    parser.add_argument("--print", action="store_true", help="print the card instead of writing README.md")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..cards import build_model_card, write_model_card

    kwargs = {"dataset_name": args.dataset_name, "repo_id": args.repo_id}
    if args.results:
        try:
            data = json.loads(Path(args.results).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(
                f"--results {args.results} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
                "pass the file `hf-simo evaluate --output` or the realign job's results.json wrote"
            ) from err
        kwargs["eval_results"] = data.get("results", data) if isinstance(data, dict) else data
        if isinstance(kwargs["eval_results"], dict) and all(
            isinstance(v, dict) and all(isinstance(x, dict) for x in v.values())
            for v in kwargs["eval_results"].values()
        ):  # a realign results.json: {row: {task: {metric: value}}} -> the last row is the model's
            rows = kwargs["eval_results"]
            kwargs["eval_results"] = rows[list(rows)[-1]]
    if args.print:
        print(build_model_card(args.folder, **kwargs))
        return EXIT_OK
    path = write_model_card(args.folder, **kwargs)
    print(f"wrote {path}")
    return EXIT_OK


__all__ = ["HELP", "configure_parser", "run"]

"""`hf-simo card FOLDER`: (re)write the model card (README.md) of a saved model folder (`hf_simo.cards`).

    hf-simo card my-model --results metrics.json --dataset_name "NYUv2" --hub_model_id org/my-model

Options: `CardArguments` (below), ``--hub_model_id`` of `hf_simo.hub.PushOptions` (the repo the usage snippet names;
its other push options do not apply) and the common options.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..hub import PushOptions
from ..utils.fields import option
from .runner import EXIT_OK, Command


@dataclass
class CardArguments:
    """The model folder, the evaluation results the card shows, and whether to print instead of writing."""

    folder: str = option(help="The saved model folder (positional: FOLDER).")
    results: str | None = option(
        None, "JSON of evaluation results: a `hf-simo evaluate --output_file` or a realign results.json."
    )
    dataset_name: str | None = option(None, "The dataset the results were measured on.")
    print: bool = option(False, "Print the card instead of writing README.md.")


NOT_APPLICABLE = {name: "the card is written locally; push it with hf-simo push" for name in (
    "hub_private_repo", "hub_revision", "commit_message", "create_pr"
)}  # fmt: skip
RENAMED = {"repo_id": "--hub_model_id"}


def read_results(path: str) -> Any:
    """The evaluation results in a results file: `{task: {metric: value}}` (the model's row of a realign
    results.json, whose rows are `{row: {task: {metric: value}}}`)."""
    from ..errors import NotFoundError, OptionError

    file = Path(path)
    if not file.is_file():
        raise NotFoundError(f"--results {path} does not exist")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise OptionError(
            f"--results {path} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
            "pass the file `hf-simo evaluate --output_file` or the realign job's results.json wrote"
        ) from err
    results = data.get("results", data) if isinstance(data, dict) else data
    if isinstance(results, dict) and all(
        isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()) for v in results.values()
    ):  # a realign results.json: {row: {task: {metric: value}}} -> the last row is the model's
        results = results[list(results)[-1]]
    return results


def run(card: CardArguments, push: PushOptions) -> int:
    from ..cards import build_model_card, write_model_card

    kwargs: dict[str, Any] = {"dataset_name": card.dataset_name, "repo_id": push.hub_model_id}
    if card.results:
        kwargs["eval_results"] = read_results(card.results)
    if card.print:
        print(build_model_card(card.folder, **kwargs))
        return EXIT_OK
    path = write_model_card(card.folder, **kwargs)
    print(f"wrote {path}")
    return EXIT_OK


COMMAND = Command(
    "hf-simo card",
    (CardArguments, PushOptions),
    run,
    positional={"folder": "FOLDER"},
    not_applicable=NOT_APPLICABLE,
    renamed=RENAMED,
    description="(Re)write the model card (README.md) of a saved model folder.",
)
main = COMMAND.main

__all__ = ["COMMAND", "CardArguments", "NOT_APPLICABLE", "RENAMED", "main", "read_results", "run"]

"""`recipes/finetune.py`: two-stage single-task fine-tuning (`hf_simo.training.finetune.run_finetune`).

`RunCommand` is the `Command` of every training job (finetune, train_mtl, pretrain_encoder, realign): before 0.2
``--push_to_hub`` took the repo (``--push_to_hub org/name``); now it is the transformers flag and the repo is
``--hub_model_id``, so the old form exits 2 saying so (argparse alone would say "Truthy value expected").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..data.arguments import DataArguments
from ..hub import HubOptions, PushOptions
from ..training.arguments import RUN_RENAMED, UNUSED_BY_TRAINING, FinetuneArguments, RunArguments
from .runner import Command, refuse_push_to_hub_with_a_repo


class RunCommand(Command):
    """A `Command` that refuses the old ``--push_to_hub ORG/NAME`` with the new spelling."""

    def parse(self, argv: Sequence[str] | None = None) -> tuple[tuple[Any, ...], Any]:
        import sys

        refuse_push_to_hub_with_a_repo(self.parser(), list(sys.argv[1:] if argv is None else argv))
        return super().parse(argv)


def run(finetune: FinetuneArguments, data: DataArguments, run_args: RunArguments, hub: HubOptions, push: PushOptions):
    from ..training.finetune import run_finetune

    return run_finetune(finetune, data, run_args, hub, push)


COMMAND = RunCommand(
    "recipes/finetune.py",
    (FinetuneArguments, DataArguments, RunArguments, HubOptions, PushOptions),
    run,
    not_applicable=dict.fromkeys(UNUSED_BY_TRAINING, "fine-tuning builds no test split"),
    renamed=RUN_RENAMED,
    description="Two-stage single-task fine-tuning: a head on the frozen encoder, then encoder and head.",
)
main = COMMAND.main

__all__ = ["COMMAND", "RunCommand", "main", "run"]

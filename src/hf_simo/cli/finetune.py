"""`recipes/finetune.py`: two-stage single-task fine-tuning (`hf_simo.training.finetune.run_finetune`)."""

from __future__ import annotations

from ..data.arguments import DataArguments
from ..training.arguments import UNUSED_BY_TRAINING, FinetuneArguments, RunArguments
from .runner import Command


def run(finetune: FinetuneArguments, data: DataArguments, run_args: RunArguments):
    from ..training.finetune import run_finetune

    return run_finetune(finetune, data, run_args)


COMMAND = Command(
    "recipes/finetune.py",
    (FinetuneArguments, DataArguments, RunArguments),
    run,
    not_applicable=dict.fromkeys(UNUSED_BY_TRAINING, "fine-tuning builds no test split"),
    description="Two-stage single-task fine-tuning: a head on the frozen encoder, then encoder and head.",
)
main = COMMAND.main

__all__ = ["COMMAND", "main", "run"]

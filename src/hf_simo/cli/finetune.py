"""`recipes/finetune.py`: two-stage single-task fine-tuning (`hf_simo.training.finetune.run_finetune`)."""

from __future__ import annotations

from ..data.arguments import DataArguments
from ..hub import HubOptions, PushOptions
from ..training.arguments import RUN_RENAMED, UNUSED_BY_TRAINING, FinetuneArguments, RunArguments
from .runner import Command


def run(finetune: FinetuneArguments, data: DataArguments, run_args: RunArguments, hub: HubOptions, push: PushOptions):
    from ..training.finetune import run_finetune

    return run_finetune(finetune, data, run_args, hub, push)


COMMAND = Command(
    "recipes/finetune.py",
    (FinetuneArguments, DataArguments, RunArguments, HubOptions, PushOptions),
    run,
    not_applicable=dict.fromkeys(UNUSED_BY_TRAINING, "fine-tuning builds no test split"),
    renamed=RUN_RENAMED,
    description="Two-stage single-task fine-tuning: a head on the frozen encoder, then encoder and head.",
)
main = COMMAND.main

__all__ = ["COMMAND", "main", "run"]

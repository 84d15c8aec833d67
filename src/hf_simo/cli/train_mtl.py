"""`recipes/train_mtl.py`: the joint multi-task baseline (`hf_simo.training.finetune.run_mtl`)."""

from __future__ import annotations

from ..data.arguments import DataArguments
from ..hub import HubOptions, PushOptions
from ..training.arguments import RUN_RENAMED, UNUSED_BY_TRAINING, MTLArguments, RunArguments
from .finetune import RunCommand


def run(mtl: MTLArguments, data: DataArguments, run_args: RunArguments, hub: HubOptions, push: PushOptions):
    from ..training.finetune import run_mtl

    return run_mtl(mtl, data, run_args, hub, push)


COMMAND = RunCommand(
    "recipes/train_mtl.py",
    (MTLArguments, DataArguments, RunArguments, HubOptions, PushOptions),
    run,
    not_applicable=dict.fromkeys(UNUSED_BY_TRAINING, "MTL training builds no test split"),
    renamed=RUN_RENAMED,
    description="The joint multi-task baseline: shared encoder, every head, unweighted mean of the task losses.",
)
main = COMMAND.main

__all__ = ["COMMAND", "main", "run"]

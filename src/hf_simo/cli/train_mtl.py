"""`recipes/train_mtl.py`: the joint multi-task baseline (`hf_simo.training.finetune.run_mtl`)."""

from __future__ import annotations

from ..data.arguments import DataArguments
from ..training.arguments import UNUSED_BY_TRAINING, MTLArguments, RunArguments
from .runner import Command


def run(mtl: MTLArguments, data: DataArguments, run_args: RunArguments):
    from ..training.finetune import run_mtl

    return run_mtl(mtl, data, run_args)


COMMAND = Command(
    "recipes/train_mtl.py",
    (MTLArguments, DataArguments, RunArguments),
    run,
    not_applicable=dict.fromkeys(UNUSED_BY_TRAINING, "MTL training builds no test split"),
    description="The joint multi-task baseline: shared encoder, every head, unweighted mean of the task losses.",
)
main = COMMAND.main

__all__ = ["COMMAND", "main", "run"]

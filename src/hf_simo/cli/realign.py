"""`hf-simo realign` and `recipes/realign.py`: merge single-task checkpoints, re-align the merged model on the
validation split, evaluate on the test split, save (the job is `hf_simo.realign.job.run_realign`)."""

from __future__ import annotations

from ..data.arguments import DataArguments
from ..realign.arguments import RealignArguments
from ..training.arguments import RunArguments
from .runner import Command


def run(realign: RealignArguments, data: DataArguments, run_args: RunArguments):
    from ..realign.job import run_realign

    return run_realign(realign, data, run_args)


COMMAND = Command(
    "hf-simo realign",
    (RealignArguments, DataArguments, RunArguments),
    run,
    description="Merge single-task checkpoints, re-align on the validation split, evaluate on the test split, save.",
)
main = COMMAND.main

__all__ = ["COMMAND", "main", "run"]

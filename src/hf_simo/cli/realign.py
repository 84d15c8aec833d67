"""`hf-simo realign` and `recipes/realign.py`: merge single-task checkpoints, re-align the merged model on the
validation split, evaluate on the test split, save (the job is `hf_simo.realign.job.run_realign`).

Every option takes effect or is refused: the run settings (`RunArguments`) reach the Accelerator and the loop, an
option the chosen ``--mode`` cannot use is an error, and an output folder holding another run is refused
(``--overwrite_output_dir`` starts over)."""

from __future__ import annotations

from ..data.arguments import DataArguments
from ..hub import HubOptions, PushOptions
from ..merging.arguments import MergeMethodArguments, SourceArguments
from ..realign.arguments import REALIGN_RENAMED, RealignArguments
from ..training.arguments import RUN_RENAMED, RunArguments
from .finetune import RunCommand


def run(
    realign: RealignArguments,
    source: SourceArguments,
    method: MergeMethodArguments,
    data: DataArguments,
    run_args: RunArguments,
    hub: HubOptions,
    push: PushOptions,
):
    from ..realign.job import run_realign
    from ..utils.logging import is_main_process

    outcome = run_realign(realign, source, method, data, run_args, hub, push)
    if outcome.table and is_main_process():
        print(outcome.table)
    return outcome


COMMAND = RunCommand(
    "hf-simo realign",
    (RealignArguments, SourceArguments, MergeMethodArguments, DataArguments, RunArguments, HubOptions, PushOptions),
    run,
    renamed={**REALIGN_RENAMED, **RUN_RENAMED},
    description="Merge single-task checkpoints, re-align on the validation split, evaluate on the test split, save.",
)
main = COMMAND.main

__all__ = ["COMMAND", "main", "run"]

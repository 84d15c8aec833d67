"""`hf-simo demo`: the whole SIMO pipeline on the embedded benchmark, from nothing (`hf_simo.demo.run.run_demo`)."""

from __future__ import annotations

from ..demo.arguments import RENAMED, DemoArguments
from ..utils.logging import is_main_process
from .runner import Command


def run(args: DemoArguments):
    from ..demo.run import run_demo, summary_text

    result = run_demo(args)
    if is_main_process():
        print(summary_text(result))
    return result


COMMAND = Command(
    "hf-simo demo",
    (DemoArguments,),
    run,
    renamed=RENAMED,
    description="The whole pipeline on the embedded benchmark, from nothing, ending with the paper's table.",
)
main = COMMAND.main

__all__ = ["COMMAND", "main", "run"]

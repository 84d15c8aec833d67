"""`hf-simo demo`: the whole SIMO pipeline on the embedded benchmark, from nothing (`hf_simo.demo.run.run_demo`)."""

from __future__ import annotations

from ..demo.arguments import DemoArguments
from .runner import Command


def run(args: DemoArguments):
    from ..demo.run import run_demo

    return run_demo(args)


COMMAND = Command(
    "hf-simo demo",
    (DemoArguments,),
    run,
    description="The whole pipeline on the embedded benchmark, from nothing, ending with the paper's table.",
)
main = COMMAND.main

__all__ = ["COMMAND", "main", "run"]

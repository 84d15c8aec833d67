"""`recipes/ship_encoder.py`: a finished (or plateau-stopped) encoder pre-training run → the encoder shipped with
hf_simo (`hf_simo.training.export.export_encoder`)."""

from __future__ import annotations

from ..training.arguments import ShipEncoderArguments
from .runner import Command


def run(args: ShipEncoderArguments):
    from ..training.export import export_encoder

    return export_encoder(args)


COMMAND = Command(
    "recipes/ship_encoder.py",
    (ShipEncoderArguments,),
    run,
    description="Write the shipped encoder (package data with provenance and loss curve) from a pre-training run.",
)
main = COMMAND.main

__all__ = ["COMMAND", "main", "run"]

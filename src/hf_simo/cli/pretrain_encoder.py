"""`recipes/pretrain_encoder.py`: the small DINOv2 of the embedded benchmark, pre-trained with masked image
modelling (`hf_simo.training.pretrain.pretrain_encoder`)."""

from __future__ import annotations

from ..data.arguments import DataArguments
from ..training.arguments import UNUSED_BY_TRAINING, EncoderArguments, RunArguments
from .runner import Command


def run(encoder: EncoderArguments, data: DataArguments, run_args: RunArguments):
    from ..training.pretrain import pretrain_encoder

    return pretrain_encoder(encoder, data, run_args)


COMMAND = Command(
    "recipes/pretrain_encoder.py",
    (EncoderArguments, DataArguments, RunArguments),
    run,
    not_applicable=dict.fromkeys(UNUSED_BY_TRAINING, "pre-training builds no test split"),
    description="Pre-train the small DINOv2 of the embedded benchmark with masked image modelling (SimMIM).",
)
main = COMMAND.main

__all__ = ["COMMAND", "main", "run"]

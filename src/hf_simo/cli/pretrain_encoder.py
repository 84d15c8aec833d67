"""`recipes/pretrain_encoder.py`: the small DINOv2 of the embedded benchmark, pre-trained with masked image
modelling (`hf_simo.training.pretrain.pretrain_encoder`)."""

from __future__ import annotations

from ..data.arguments import DataArguments
from ..hub import PushOptions
from ..training.arguments import ENCODER_RENAMED, RUN_RENAMED, UNUSED_BY_TRAINING, EncoderArguments, RunArguments
from .finetune import RunCommand


def run(encoder: EncoderArguments, data: DataArguments, run_args: RunArguments, push: PushOptions):
    from ..training.pretrain import pretrain_encoder

    return pretrain_encoder(encoder, data, run_args, push)


COMMAND = RunCommand(
    "recipes/pretrain_encoder.py",
    (EncoderArguments, DataArguments, RunArguments, PushOptions),
    run,
    not_applicable=dict.fromkeys(UNUSED_BY_TRAINING, "pre-training builds no test split"),
    renamed={**ENCODER_RENAMED, **RUN_RENAMED},
    description="Pre-train the small DINOv2 of the embedded benchmark with masked image modelling (SimMIM).",
)
main = COMMAND.main

__all__ = ["COMMAND", "main", "run"]

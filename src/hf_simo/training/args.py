"""Dataclass arguments of the training recipes, parsed by `HfArgumentParser` from the command line or a YAML file.

Fields in `OPERATIONAL_FIELDS` (output folder, logging, checkpoint frequency, threads, the
simulated interruption, Hub upload) do not change what a run computes; every other field does, and is compared with
the `run_args.json` of an existing output folder to tell "the same run, resume it" from "another run, refuse".
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import HfArgumentParser


def _op(default: Any, help: str) -> Any:
    """A field that does not change the result of a run (listed in `OPERATIONAL_FIELDS`)."""
    return field(default=default, metadata={"help": help})


def _arg(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


_MODEL_HELP = (
    "Pre-trained DINOv2 (Hub id such as facebook/dinov2-base, or a folder). Default: the small encoder shipped with "
    "hf_simo, pre-trained on the embedded benchmark's pre-training set (hf_simo.encoders)."
)
_PRETRAIN_HELP = (
    "Pre-train a small encoder on this dataset's training images first (SimMIM, a few minutes, cached; see "
    "--encoder_config) instead of using the shipped one."
)
_ENCODER_CONFIG_HELP = "YAML file of EncoderArguments for --pretrain_encoder (default: EncoderArguments' defaults)."
_ENCODER_LR_HELP = (
    "Stage 2 peak learning rate of the encoder (default: stage2_learning_rate, the same as the heads'). Fine-tuning "
    "practice for DINOv2-family models uses a lower one."
)
_LAYER_DECAY_HELP = (
    "Layer-wise learning-rate decay of the encoder in stage 2 (BEiT/DINOv2): block i of L gets "
    "encoder lr x layer_decay^(L - i), the embeddings layer_decay^(L + 1), the final norm and the heads no decay; "
    "1.0 = off."
)

_HEAD_OPTIONS_HELP = (
    "Head options as JSON (a mapping in YAML), e.g. '{\"fusion_hidden_size\": 64}' for a DPT head; see TaskSpec."
)


@dataclass
class DataArguments:
    """Which dataset, and how much of it."""

    dataset: str = _arg(
        "nyuv2",
        "Embedded benchmark preset (nyuv2, taskonomy), a real dataset (nyuv2_real, cityscapes, taskonomy_real; needs "
        "--dataset_path), a folder saved with DatasetDict.save_to_disk by hf_simo.data, or pretraining (images "
        "only: the embedded benchmark's larger, more varied encoder pre-training set).",
    )
    dataset_path: str | None = _arg(None, "Root folder of a real dataset.")
    image_size: int = _arg(64, "Image side of the embedded benchmark, in pixels.")
    train_samples: int = _arg(2000, "Training samples of the embedded benchmark.")
    validation_samples: int = _arg(200, "Validation samples of the embedded benchmark.")
    data_seed: int = _arg(0, "Seed of the embedded benchmark (and of real datasets' validation/test carving).")
    max_train_samples: int | None = _arg(None, "Use only the first N training samples (quick runs).")
    max_eval_samples: int | None = _arg(None, "Use only the first N validation samples (quick runs).")
    augment: bool = _arg(True, "Random scale-crop augmentation (batched, on the device).")
    dataset_cache_dir: str | None = _op(None, "Where the embedded benchmark is cached (default $HF_HOME/hf_simo).")


@dataclass
class RunArguments:
    """How a run executes: output folder, batch sizes, precision, checkpoints, logging, Hub upload."""

    output_dir: str | None = _op(None, "Output folder (default: outputs/<recipe>-<dataset>-<task>).")
    overwrite_output_dir: bool = _op(False, "Replace an output folder that holds a different run.")
    seed: int = _arg(0, "Seed of model initialisation, shuffling and augmentation.")
    per_device_train_batch_size: int = _arg(16, "Training batch size per process (the paper uses 16 on NYUv2).")
    per_device_eval_batch_size: int = _arg(64, "Evaluation batch size per process.")
    gradient_accumulation_steps: int = _arg(1, "Batches accumulated per optimizer step.")
    mixed_precision: str = _arg("no", "no, fp16 (GPU) or bf16.")
    max_grad_norm: float = _arg(25.0, "Gradient clipping (the paper's 25).")
    weight_decay: float = _arg(0.01, "AdamW weight decay (not applied to biases, norms and tokens).")
    warmup_ratio: float = _arg(0.05, "One-cycle warm-up fraction (the paper's 5%%).")
    early_stopping_min_delta: float = _arg(0.0, "Minimum validation-loss improvement that resets the patience.")
    eval_steps: int | None = _arg(None, "Also evaluate every N optimizer steps (default: at each epoch end).")
    checkpointing_steps: int | None = _op(100, "Save a checkpoint every N optimizer steps (and at each stage end).")
    checkpoints_total_limit: int = _op(2, "Checkpoints kept.")
    keep_checkpoints: bool = _op(False, "Keep the checkpoints once the final model is saved.")
    logging_steps: int = _op(10, "Log the training loss every N optimizer steps.")
    log_with: str = _op("jsonl", "Trackers: jsonl, tensorboard, all, none, or a comma-separated list.")
    stop_after_steps: int | None = _op(
        None, "Stop after N optimizer steps as if interrupted (a checkpoint is saved; run again to resume)."
    )
    num_threads: int | None = _op(None, "Torch CPU threads per process (default: cores / processes).")
    dataloader_num_workers: int = _op(0, "DataLoader worker processes.")
    disable_progress_bar: bool = _op(False, "No progress bars.")
    push_to_hub: str | None = _op(None, "Upload the final model to this Hub repo id (org/name).")
    hub_private_repo: bool = _op(False, "Create the Hub repo as private.")

    def trainer_config(self, output_dir: str | os.PathLike, train_batch_size: int | None = None):
        """The loop settings these arguments give (`train_batch_size` overrides the per-device one)."""
        from .loop import TrainerConfig

        return TrainerConfig(
            output_dir=output_dir,
            train_batch_size=train_batch_size or self.per_device_train_batch_size,
            eval_batch_size=self.per_device_eval_batch_size,
            max_grad_norm=self.max_grad_norm,
            seed=self.seed,
            checkpointing_steps=self.checkpointing_steps,
            checkpoints_total_limit=self.checkpoints_total_limit,
            logging_steps=self.logging_steps,
            stop_after_steps=self.stop_after_steps,
            dataloader_num_workers=self.dataloader_num_workers,
            progress_bar=not self.disable_progress_bar,
        )


@dataclass
class EncoderArguments:
    """The small DINOv2 trained from scratch with masked image modelling (SimMIM) on the benchmark images."""

    hidden_size: int = _arg(128, "Encoder width.")
    num_hidden_layers: int = _arg(4, "Encoder depth (blocks).")
    num_attention_heads: int = _arg(4, "Attention heads.")
    mlp_ratio: int = _arg(4, "MLP width / hidden size.")
    patch_size: int = _arg(8, "Patch size in pixels.")
    mask_ratio: float = _arg(0.5, "Fraction of the mask blocks hidden from the encoder.")
    mask_patch_size: int = _arg(16, "Side of a mask block in pixels (a multiple of the patch size).")
    norm_pix_loss: bool = _arg(True, "Regress per-patch normalised pixels (MAE's norm-pix target).")
    num_epochs: int = _arg(6, "Pre-training epochs.")
    early_stopping_patience: int | None = _arg(
        None, "Stop when the validation loss has not improved for N evaluations (see --eval_steps); None: never."
    )
    learning_rate: float = _arg(2e-3, "Peak learning rate.")
    batch_size: int = _arg(64, "Pre-training batch size per process.")


@dataclass
class FinetuneArguments:
    """Two-stage fine-tuning (paper section 3): heads on a frozen encoder, then everything."""

    model_name_or_path: str | None = _arg(None, _MODEL_HELP)
    model_revision: str | None = _arg(None, "Revision (branch, tag or commit) of a Hub encoder.")
    pretrain_encoder: bool = _arg(False, _PRETRAIN_HELP)
    encoder_config: str | None = _arg(None, _ENCODER_CONFIG_HELP)
    task: str | None = _arg(None, "Task to fine-tune (default: the dataset's first task).")
    head: str = _arg("linear", "Head type: linear (DINOv2 linear head) or dpt.")
    head_options: str | None = _arg(None, _HEAD_OPTIONS_HELP)
    stage1_epochs: int = _arg(2, "Stage 1 (heads only, encoder frozen): maximum epochs.")
    stage1_learning_rate: float = _arg(1e-2, "Stage 1 peak learning rate.")
    stage1_patience: int | None = _arg(2, "Stage 1 early-stopping patience (evaluations).")
    stage2_epochs: int = _arg(3, "Stage 2 (encoder + head): maximum epochs.")
    stage2_learning_rate: float = _arg(2e-3, "Stage 2 peak learning rate.")
    stage2_encoder_learning_rate: float | None = _arg(None, _ENCODER_LR_HELP)
    layer_decay: float = _arg(1.0, _LAYER_DECAY_HELP)
    stage2_patience: int | None = _arg(3, "Stage 2 early-stopping patience (evaluations).")


@dataclass
class MTLArguments:
    """Joint multi-task training: shared encoder, every head, unweighted mean of the task losses (two stages)."""

    model_name_or_path: str | None = _arg(None, _MODEL_HELP)
    model_revision: str | None = _arg(None, "Revision (branch, tag or commit) of a Hub encoder.")
    pretrain_encoder: bool = _arg(False, _PRETRAIN_HELP)
    encoder_config: str | None = _arg(None, _ENCODER_CONFIG_HELP)
    tasks: list[str] | None = _arg(None, "Tasks to train jointly (default: all of the dataset's tasks).")
    head: str = _arg("linear", "Head type of every task: linear or dpt.")
    head_options: str | None = _arg(None, _HEAD_OPTIONS_HELP)
    stage1_epochs: int = _arg(2, "Stage 1 (heads only, encoder frozen): maximum epochs.")
    stage1_learning_rate: float = _arg(1e-2, "Stage 1 peak learning rate.")
    stage1_patience: int | None = _arg(2, "Stage 1 early-stopping patience (evaluations).")
    stage2_epochs: int = _arg(
        9,
        "Stage 2 (encoder + heads): maximum epochs. Default: the three single-task runs' stage 2 together (3 × 3), "
        "so MTL gets the same training compute as the models it is compared with (the paper gives it 4×: 200 vs 50).",
    )
    stage2_learning_rate: float = _arg(2e-3, "Stage 2 peak learning rate.")
    stage2_encoder_learning_rate: float | None = _arg(None, _ENCODER_LR_HELP)
    layer_decay: float = _arg(1.0, _LAYER_DECAY_HELP)
    stage2_patience: int | None = _arg(3, "Stage 2 early-stopping patience (evaluations).")


OPERATIONAL_FIELDS = frozenset(
    {
        "dataset_cache_dir",
        "output_dir",
        "overwrite_output_dir",
        "checkpointing_steps",
        "checkpoints_total_limit",
        "keep_checkpoints",
        "logging_steps",
        "log_with",
        "stop_after_steps",
        "num_threads",
        "dataloader_num_workers",
        "disable_progress_bar",
        "push_to_hub",
        "hub_private_repo",
    }
)


def json_mapping(value: str | dict[str, Any] | None, name: str) -> dict[str, Any]:
    """An option given as JSON on the command line (`'{"density": 0.2}'`) or as a mapping in a YAML file."""
    from ..configuration_simo import TaskSpecError

    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return dict(value)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise TaskSpecError(f"{name} must be a JSON object, got {value!r} ({err.msg})") from err
    if not isinstance(parsed, dict):
        raise TaskSpecError(f"{name} must be a JSON object, got {value!r}")
    return parsed


def parse_args(dataclass_types: Sequence[type], argv: Sequence[str] | None = None) -> tuple:
    """Parse `argv` (default `sys.argv[1:]`) into instances of `dataclass_types`.

    A single argument ending in `.yaml`/`.yml` is read with `HfArgumentParser.parse_yaml_file` (unknown keys are an
    error, so a typo in a config file does not silently fall back to a default).
    """
    parser = HfArgumentParser(tuple(dataclass_types))
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        path = os.path.abspath(argv[0])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config file {argv[0]} does not exist")
        return tuple(parser.parse_yaml_file(path, allow_extra_keys=False))
    *parsed, remaining = parser.parse_args_into_dataclasses(
        args=argv, look_for_args_file=False, return_remaining_strings=True
    )
    if remaining:  # a usage error (exit code 2), with the closest known option when there is one
        known = [option for action in parser._actions for option in action.option_strings]
        hints = [
            f"{word} (did you mean {close[0]}?)"
            for word in remaining
            if word.startswith("-") and (close := difflib.get_close_matches(word.split("=")[0], known, n=1))
        ]
        parser.error(f"unrecognized arguments: {' '.join(hints or remaining)}")
    return tuple(parsed)


def identity(*instances: Any) -> dict[str, Any]:
    """The fields that define what a run computes (see the module docstring), merged over `instances`."""
    out: dict[str, Any] = {}
    for instance in instances:
        for f in dataclasses.fields(instance):
            if f.name not in OPERATIONAL_FIELDS:
                out[f.name] = getattr(instance, f.name)
    return out


def as_dict(*instances: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for instance in instances:
        out.update(dataclasses.asdict(instance))
    return out


__all__ = [
    "DataArguments",
    "EncoderArguments",
    "FinetuneArguments",
    "MTLArguments",
    "OPERATIONAL_FIELDS",
    "RunArguments",
    "as_dict",
    "identity",
    "parse_args",
]

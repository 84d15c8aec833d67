"""Dataclass arguments of the training recipes (`hf_simo.cli.finetune`, `train_mtl`, `pretrain_encoder`, and the
run settings of `realign`), parsed by `hf_simo.cli.parser.SimoArgumentParser` from the command line and YAML files.

Fields in `OPERATIONAL_FIELDS` (output folder, logging, checkpoint frequency, threads, the
simulated interruption, Hub upload) do not change what a run computes; every other field does, and is compared with
the `run_args.json` of an existing output folder to tell "the same run, resume it" from "another run, refuse".
The dataset options are `hf_simo.data.arguments.DataArguments`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..utils.fields import json_mapping, option, require_choice, require_non_negative, require_positive, require_range


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
    "1.0 = off. The default 0.75 was chosen on validation (benchmarks/lr_sweep.py; RESULTS.md)."
)

_HEAD_OPTIONS_HELP = (
    "Head options as JSON (a mapping in YAML), e.g. '{\"fusion_hidden_size\": 64}' for a DPT head; see TaskSpec."
)


DEFAULT_TRAIN_BATCH_SIZE = 16  # --per_device_train_batch_size of the recipes (pretrain_encoder: 64)


@dataclass
class RunArguments:
    """How a run executes: output folder, batch sizes, precision, checkpoints, logging, Hub upload (the repo is
    `hf_simo.hub.PushOptions`). Names as `transformers.TrainingArguments`."""

    output_dir: str | None = option(None, "Output folder (default: outputs/<recipe>-<dataset>-<task>).")
    overwrite_output_dir: bool = option(False, "Replace an output folder that holds a different run.")
    seed: int = option(0, "Seed of model initialisation, shuffling and augmentation.")
    per_device_train_batch_size: int | None = option(
        None, "Training batch size per process (default: 16, the paper's on NYUv2; 64 for pretrain_encoder)."
    )
    per_device_eval_batch_size: int = option(64, "Evaluation batch size per process.")
    gradient_accumulation_steps: int | None = option(
        None,
        "Batches accumulated per optimizer step (default: accelerate launch's, else 1; one contradicting the launch "
        "is refused).",
    )
    mixed_precision: str | None = option(
        None,
        "no, fp16 (GPU) or bf16 (default: accelerate launch's --mixed_precision, else no; one contradicting the "
        "launch is refused).",
    )
    max_grad_norm: float = option(25.0, "Gradient clipping (the paper's 25).")
    weight_decay: float = option(0.01, "AdamW weight decay (not applied to biases, norms and tokens).")
    warmup_ratio: float = option(0.05, "One-cycle warm-up fraction (the paper's 5%%).")
    early_stopping_threshold: float = option(0.0, "Minimum validation-loss improvement that resets the patience.")
    eval_steps: int | None = option(None, "Also evaluate every N optimizer steps (default: at each epoch end).")
    save_steps: int | None = option(100, "Save a checkpoint every N optimizer steps (and at each stage end).")
    save_total_limit: int = option(2, "Checkpoints kept.")
    keep_checkpoints: bool = option(False, "Keep the checkpoints once the final model is saved.")
    logging_steps: int = option(10, "Log the training loss every N optimizer steps.")
    report_to: str = option("jsonl", "Trackers: jsonl, tensorboard, all, none, or a comma-separated list.")
    stop_after_steps: int | None = option(
        None, "Stop after N optimizer steps as if interrupted (a checkpoint is saved; run again to resume)."
    )
    num_threads: int | None = option(None, "Torch CPU threads per process (default: cores / processes).")
    dataloader_num_workers: int = option(0, "DataLoader worker processes.")
    push_to_hub: bool = option(False, "Upload the final model to the Hub repo --hub_model_id (ORG/NAME).")

    def __post_init__(self) -> None:
        require_positive(self, "per_device_eval_batch_size", "save_total_limit")
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps"):  # None: the default / launch's
            if getattr(self, name) is not None:
                require_positive(self, name)
        require_positive(
            self,
            "eval_steps",
            "save_steps",
            "stop_after_steps",
            "num_threads",
            optional=True,
        )
        if self.mixed_precision is not None:
            require_choice(self, "mixed_precision", ("no", "fp16", "bf16"))
        require_positive(self, "max_grad_norm", integer=False)
        require_range(self, "warmup_ratio", 0.0, 1.0)
        require_non_negative(self, "weight_decay", "early_stopping_threshold", integer=False)
        require_non_negative(self, "logging_steps", "dataloader_num_workers")  # 0: never / in the main process

    def train_batch_size(self, default: int = DEFAULT_TRAIN_BATCH_SIZE) -> int:
        """--per_device_train_batch_size, else the recipe's default."""
        return default if self.per_device_train_batch_size is None else self.per_device_train_batch_size

    def trainer_config(
        self, output_dir: str | os.PathLike, *, default_train_batch_size: int = DEFAULT_TRAIN_BATCH_SIZE
    ):
        """The loop settings these arguments give (`TrainerConfig`): one place for every recipe and re-alignment."""
        from .config import TrainerConfig

        return TrainerConfig(
            output_dir=output_dir,
            train_batch_size=self.train_batch_size(default_train_batch_size),
            eval_batch_size=self.per_device_eval_batch_size,
            max_grad_norm=self.max_grad_norm,
            seed=self.seed,
            checkpointing_steps=self.save_steps,
            checkpoints_total_limit=self.save_total_limit,
            logging_steps=self.logging_steps,
            stop_after_steps=self.stop_after_steps,
            dataloader_num_workers=self.dataloader_num_workers,
        )

    def stage_defaults(self) -> dict[str, Any]:
        """The `Stage` settings these arguments give (warm-up, weight decay, early-stopping threshold, eval steps)."""
        return {
            "warmup_ratio": self.warmup_ratio,
            "weight_decay": self.weight_decay,
            "min_delta": self.early_stopping_threshold,
            "eval_steps": self.eval_steps,
        }


# old spellings of RunArguments' options, refused with exit 2 naming the new one (issue 11's one vocabulary)
RUN_RENAMED = {
    "early_stopping_min_delta": "--early_stopping_threshold",
    "checkpointing_steps": "--save_steps",
    "checkpoints_total_limit": "--save_total_limit",
    "log_with": "--report_to",
    "disable_progress_bar": "--disable_tqdm",
}


@dataclass
class EncoderArguments:
    """The small DINOv2 trained from scratch with masked image modelling (SimMIM) on the benchmark images."""

    hidden_size: int = option(128, "Encoder width.")
    num_hidden_layers: int = option(4, "Encoder depth (blocks).")
    num_attention_heads: int = option(4, "Attention heads.")
    mlp_ratio: int = option(4, "MLP width / hidden size.")
    patch_size: int = option(8, "Patch size in pixels.")
    mask_ratio: float = option(0.5, "Fraction of the mask blocks hidden from the encoder.")
    mask_patch_size: int = option(16, "Side of a mask block in pixels (a multiple of the patch size).")
    norm_pix_loss: bool = option(True, "Regress per-patch normalised pixels (MAE's norm-pix target).")
    num_train_epochs: int = option(6, "Pre-training epochs.")
    early_stopping_patience: int | None = option(
        None, "Stop when the validation loss has not improved for N evaluations (see --eval_steps); None: never."
    )
    learning_rate: float = option(2e-3, "Peak learning rate.")

    def __post_init__(self) -> None:
        require_positive(
            self,
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "mlp_ratio",
            "patch_size",
            "mask_patch_size",
            "num_train_epochs",
        )
        require_positive(self, "learning_rate", integer=False)
        require_range(self, "mask_ratio", 0.0, 1.0)


@dataclass
class TwoStageArguments:
    """What single-task fine-tuning and MTL share: the encoder to start from, the heads and the two stages (paper
    section 3: heads on a frozen encoder, then everything)."""

    model_name_or_path: str | None = option(None, _MODEL_HELP)
    model_revision: str | None = option(None, "Revision (branch, tag or commit) of a Hub encoder.")
    pretrain_encoder: bool = option(False, _PRETRAIN_HELP)
    encoder_config: str | None = option(None, _ENCODER_CONFIG_HELP)
    head: str = option("linear", "Head type: linear (DINOv2 linear head) or dpt.")
    head_options: str | None = option(None, _HEAD_OPTIONS_HELP)
    stage1_epochs: int = option(2, "Stage 1 (heads only, encoder frozen): maximum epochs.")
    stage1_learning_rate: float = option(1e-2, "Stage 1 peak learning rate.")
    stage1_patience: int | None = option(2, "Stage 1 early-stopping patience (evaluations).")
    stage2_epochs: int = option(3, "Stage 2 (encoder + head): maximum epochs.")
    stage2_learning_rate: float = option(2e-3, "Stage 2 peak learning rate.")
    stage2_encoder_learning_rate: float | None = option(None, _ENCODER_LR_HELP)
    layer_decay: float = option(0.75, _LAYER_DECAY_HELP)
    stage2_patience: int | None = option(3, "Stage 2 early-stopping patience (evaluations).")

    def __post_init__(self) -> None:
        require_positive(self, "stage1_epochs", "stage2_epochs")
        require_positive(self, "stage1_patience", "stage2_patience", optional=True)
        require_positive(self, "stage1_learning_rate", "stage2_learning_rate", integer=False)


@dataclass
class FinetuneArguments(TwoStageArguments):
    """Two-stage single-task fine-tuning: a head on the frozen encoder, then encoder and head."""

    task: str | None = option(None, "Task to fine-tune (default: the dataset's first task).")


@dataclass
class MTLArguments(TwoStageArguments):
    """Joint multi-task training: shared encoder, every head, unweighted mean of the task losses (two stages)."""

    head: str = option("linear", "Head type of every task: linear or dpt.")
    stage2_epochs: int = option(
        9,
        "Stage 2 (encoder + heads): maximum epochs. Default: the three single-task runs' stage 2 together (3 × 3), "
        "so MTL gets the same training compute as the models it is compared with (the paper gives it 4×: 200 vs 50).",
    )
    tasks: list[str] | None = option(None, "Tasks to train jointly (default: all of the dataset's tasks).")


@dataclass
class ShipEncoderArguments:
    """Which pre-training run to ship, and where."""

    run_dir: str = field(metadata={"help": "Output folder of a recipes/pretrain_encoder.py run."})
    destination: str | None = field(
        default=None, metadata={"help": "Folder to write (default: the package's shipped encoder folder)."}
    )
    max_megabytes: float = field(default=10.0, metadata={"help": "Size limit of model.safetensors."})
    from_checkpoint: bool = field(
        default=False,
        metadata={
            "help": "Ship the newest checkpoint even though the run has a final model (default: the final one)."
        },
    )
    provisional: bool = field(
        default=False, metadata={"help": "Mark the encoder as provisional (a short-budget stand-in) in provenance."}
    )
    note: str | None = field(default=None, metadata={"help": "A sentence stored in provenance.json."})


OPERATIONAL_FIELDS = frozenset(
    {
        "dataset_cache_dir",
        "output_dir",
        "overwrite_output_dir",
        "save_steps",
        "save_total_limit",
        "keep_checkpoints",
        "logging_steps",
        "report_to",
        "stop_after_steps",
        "num_threads",
        "dataloader_num_workers",
        "push_to_hub",
    }
)


# `DataArguments` fields a training recipe cannot use (it builds no test split): its command refuses a value other than
# the default (`hf_simo.cli.finetune`, ...), and they stay out of its identity, so adding them changed no run folder.
UNUSED_BY_TRAINING = frozenset({"test_samples"})


def identity(*instances: Any, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The fields that define what a run computes (see the module docstring), merged over `instances`.

    `exclude`: fields the run cannot use (its command refuses any value but the default, e.g. ``test_samples`` of
    a training recipe), left out so they do not change the run's identity.
    """
    skip = OPERATIONAL_FIELDS | set(exclude)
    out: dict[str, Any] = {}
    for instance in instances:
        for f in dataclasses.fields(instance):
            if f.name not in skip:
                out[f.name] = getattr(instance, f.name)
    return out


def as_dict(*instances: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for instance in instances:
        out.update(dataclasses.asdict(instance))
    return out


ENCODER_RENAMED = {"num_epochs": "--num_train_epochs", "batch_size": "--per_device_train_batch_size"}
PRETRAIN_TRAIN_BATCH_SIZE = 64  # pretrain_encoder's default --per_device_train_batch_size


__all__ = [
    "TwoStageArguments",
    "DEFAULT_TRAIN_BATCH_SIZE",
    "ENCODER_RENAMED",
    "PRETRAIN_TRAIN_BATCH_SIZE",
    "RUN_RENAMED",
    "ShipEncoderArguments",
    "EncoderArguments",
    "FinetuneArguments",
    "MTLArguments",
    "OPERATIONAL_FIELDS",
    "RunArguments",
    "UNUSED_BY_TRAINING",
    "as_dict",
    "identity",
    "json_mapping",
]

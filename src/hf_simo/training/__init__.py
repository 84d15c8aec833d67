"""Training with Accelerate: a generic staged loop with exact resume, and the SIMO recipes built on it.

- `fit(accelerator, model, stages, train_data, eval_data, loss_fn, config, ...)`: any model, any trainable parameter
  groups per `Stage`, early stopping, gradient accumulation, mixed precision, checkpoints and exact resume,
  evaluation sharded over processes and reduced exactly.
- `make_accelerator(output_dir, ...)`: the Accelerator settings `fit` relies on (and real CPU multi-process runs).
- `pretrain_encoder` / `default_encoder`: the small SimMIM-pre-trained DINOv2 of the embedded benchmark.
- `run_finetune` / `run_mtl`: two-stage single-task fine-tuning and the joint MTL baseline (the recipes' bodies).
"""

from .args import DataArguments, EncoderArguments, FinetuneArguments, MTLArguments, RunArguments, parse_args
from .data import UnknownTaskError, load_training_data, make_augmentation, make_simo_loss_fn
from .finetune import encoder_drift, run_finetune, run_mtl
from .loop import (
    Stage,
    StepOutput,
    TrainerConfig,
    TrainerState,
    TrainingError,
    TrainingResult,
    evaluate,
    fit,
    latest_checkpoint,
    list_checkpoints,
    make_eval_loader,
    shard_bounds,
    shard_dataset,
    stage_param_groups,
)
from .pretrain import MaskedImageModeling, default_encoder, pretrain_encoder
from .run import RunConflictError, model_dir, read_summary
from .utils import JSONLTracker, configure_threads, finish_tracking, init_tracking, make_accelerator, read_jsonl


__all__ = [
    "DataArguments",
    "EncoderArguments",
    "FinetuneArguments",
    "JSONLTracker",
    "MTLArguments",
    "MaskedImageModeling",
    "RunArguments",
    "RunConflictError",
    "Stage",
    "StepOutput",
    "TrainerConfig",
    "TrainerState",
    "TrainingError",
    "TrainingResult",
    "UnknownTaskError",
    "configure_threads",
    "default_encoder",
    "encoder_drift",
    "evaluate",
    "finish_tracking",
    "fit",
    "init_tracking",
    "latest_checkpoint",
    "list_checkpoints",
    "load_training_data",
    "make_accelerator",
    "make_augmentation",
    "make_eval_loader",
    "make_simo_loss_fn",
    "model_dir",
    "parse_args",
    "pretrain_encoder",
    "read_jsonl",
    "read_summary",
    "run_finetune",
    "run_mtl",
    "shard_bounds",
    "shard_dataset",
    "stage_param_groups",
]

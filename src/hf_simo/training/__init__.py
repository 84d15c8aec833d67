"""Training with Accelerate: a generic staged loop with exact resume, and the SIMO recipes built on it.

- `Trainer(accelerator, model, stages, train_data, eval_data, loss_fn, config, ...).run()` (= `fit(...)`): any model, any trainable parameter
  groups per `Stage`, early stopping, gradient accumulation, mixed precision, checkpoints and exact resume,
  evaluation sharded over processes and reduced exactly.
- `make_accelerator(output_dir, ...)`: the Accelerator settings `fit` relies on (and real CPU multi-process runs).
- `pretrain_encoder` / `default_encoder`: the small SimMIM-pre-trained DINOv2 of the embedded benchmark.
- `run_finetune` / `run_mtl`: two-stage single-task fine-tuning and the joint MTL baseline (the recipes' bodies).

Names load on first use (`hf_simo.utils.lazy`); the table below is the package's public API.
"""

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports


_EXPORTS = {
    "EncoderArguments": "hf_simo.training.arguments",
    "FinetuneArguments": "hf_simo.training.arguments",
    "JSONLTracker": "hf_simo.training.tracking",
    "MTLArguments": "hf_simo.training.arguments",
    "MaskedImageModeling": "hf_simo.training.pretrain",
    "RunArguments": "hf_simo.training.arguments",
    "RunConflictError": "hf_simo.errors",
    "Stage": "hf_simo.training.config",
    "StepOutput": "hf_simo.training.config",
    "Trainer": "hf_simo.training.loop",
    "TrainerConfig": "hf_simo.training.config",
    "TrainerState": "hf_simo.training.config",
    "TrainingError": "hf_simo.errors",
    "TrainingResult": "hf_simo.training.config",
    "configure_threads": "hf_simo.training.accelerator",
    "default_encoder": "hf_simo.training.pretrain",
    "dataset_task_specs": "hf_simo.training.finetune",
    "encoder_drift": "hf_simo.training.finetune",
    "evaluate": "hf_simo.training.validation",
    "finish_tracking": "hf_simo.training.tracking",
    "fit": "hf_simo.training.loop",
    "init_tracking": "hf_simo.training.tracking",
    "latest_checkpoint": "hf_simo.training.checkpoints",
    "list_checkpoints": "hf_simo.training.checkpoints",
    "make_accelerator": "hf_simo.training.accelerator",
    "make_eval_loader": "hf_simo.training.batching",
    "make_simo_loss_fn": "hf_simo.training.simo_loss",
    "model_dir": "hf_simo.training.run",
    "pretrain_encoder": "hf_simo.training.pretrain",
    "read_jsonl": "hf_simo.training.tracking",
    "read_summary": "hf_simo.training.run",
    "run_finetune": "hf_simo.training.finetune",
    "run_mtl": "hf_simo.training.finetune",
    "shard_bounds": "hf_simo.training.batching",
    "shard_dataset": "hf_simo.training.batching",
    "one_cycle_schedule": "hf_simo.training.optim",
    "resolve_launch_setting": "hf_simo.training.accelerator",
    "resolve_trackers": "hf_simo.training.tracking",
    "stage_param_groups": "hf_simo.training.optim",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for IDEs and type checkers; at run time the table above resolves the names
    from hf_simo.errors import RunConflictError, TrainingError
    from hf_simo.training.accelerator import configure_threads, make_accelerator, resolve_launch_setting
    from hf_simo.training.arguments import EncoderArguments, FinetuneArguments, MTLArguments, RunArguments
    from hf_simo.training.batching import make_eval_loader, shard_bounds, shard_dataset
    from hf_simo.training.checkpoints import latest_checkpoint, list_checkpoints
    from hf_simo.training.config import Stage, StepOutput, TrainerConfig, TrainerState, TrainingResult
    from hf_simo.training.finetune import dataset_task_specs, encoder_drift, run_finetune, run_mtl
    from hf_simo.training.loop import Trainer, fit
    from hf_simo.training.optim import one_cycle_schedule, stage_param_groups
    from hf_simo.training.pretrain import MaskedImageModeling, default_encoder, pretrain_encoder
    from hf_simo.training.run import model_dir, read_summary
    from hf_simo.training.simo_loss import make_simo_loss_fn
    from hf_simo.training.tracking import JSONLTracker, finish_tracking, init_tracking, read_jsonl, resolve_trackers
    from hf_simo.training.validation import evaluate

"""The data types of the training loop: what a loss function returns, a `Stage` of training, the loop settings
(`TrainerConfig`), the resumable loop state (`TrainerState`) and what `fit` returns (`TrainingResult`)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class StepOutput:
    """What a loss function returns for one batch.

    loss: the scalar to back-propagate (a mean over the batch).
    sample_losses: (B,) per-sample losses; with them the validation loss is the mean over samples, which does not
        depend on how the evaluation set is batched or sharded. Without them the batch loss counts once per sample.
    logs: extra (B,) per-sample values or scalars to average over the evaluation set (e.g. per-task losses).
    predictions / labels: task -> tensors, fed to `MultiTaskMetrics.update` during evaluation.
    """

    loss: torch.Tensor
    sample_losses: torch.Tensor | None = None
    logs: dict[str, torch.Tensor] = field(default_factory=dict)
    predictions: Mapping[str, torch.Tensor] | None = None
    labels: Mapping[str, torch.Tensor] | None = None


LossFn = Callable[[nn.Module, dict[str, Any]], StepOutput]
BatchTransform = Callable[[dict[str, Any], torch.Generator], dict[str, Any]]


@dataclass
class Stage:
    """One phase of training.

    trainable: parameter-name prefixes that learn ("" = all), or a callable `model -> list of param groups` (dicts
        with "params" and optionally "lr" / "weight_decay") for full control. Everything else is frozen.
    frozen: prefixes that stay frozen even if `trainable` matches them (e.g. DINOv2's unused `mask_token`).
    keep_model_frozen: parameters that do not require gradients when `fit` starts (parts the model freezes itself,
        such as unused DPT layers, which DDP could not reduce) stay frozen; False lets `trainable` unfreeze them.
    num_epochs / max_steps: the schedule length is min(num_epochs * steps per epoch, max_steps) optimizer steps.
    early_stopping_patience: stop after this many evaluations without improving the validation loss by more than
        `min_delta` (None: never stop early). `restore_best` reloads the best weights when the stage ends.
    """

    name: str
    trainable: Sequence[str] | Callable[[nn.Module], list[dict[str, Any]]] = ("",)
    frozen: Sequence[str] = ()
    learning_rate: float = 1e-4
    num_epochs: int = 1
    max_steps: int | None = None
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    early_stopping_patience: int | None = None
    min_delta: float = 0.0
    restore_best: bool = True
    eval_steps: int | None = None
    keep_model_frozen: bool = True


@dataclass
class TrainerConfig:
    """Loop settings that do not depend on the model.

    stop_after_steps: stop after this many optimizer steps in total, as if interrupted: a checkpoint is saved and
        `fit` returns with `interrupted=True`. The schedules are unchanged, so a later `fit` resumes to the result of
        an uninterrupted run.
    checkpointing_steps: save a checkpoint every N optimizer steps (counted over all stages); one is always saved
        when a stage ends. checkpoints_total_limit: how many to keep.
    project_name / tracker_config: used to start the Accelerator's trackers unless the caller already did
        (`init_tracking`).
    """

    output_dir: str | os.PathLike
    train_batch_size: int = 16
    eval_batch_size: int = 32
    max_grad_norm: float | None = 25.0
    seed: int = 0
    checkpointing_steps: int | None = None
    checkpoints_total_limit: int | None = 2
    logging_steps: int = 10
    stop_after_steps: int | None = None
    resume: bool = True
    dataloader_num_workers: int = 0
    progress_bar: bool = True
    freeze_eval_mode: bool = True
    drop_last: bool = True
    project_name: str = "train"
    tracker_config: dict[str, Any] | None = None


@dataclass
class TrainerState:
    """Everything the loop needs to continue exactly where it stopped (saved as JSON in each checkpoint)."""

    stage_names: list[str] = field(default_factory=list)
    stage_index: int = 0
    stage_done: bool = False
    epoch: int = 0
    batches_in_epoch: int = 0
    stage_step: int = 0
    global_step: int = 0
    best_loss: float | None = None
    bad_evals: int = 0
    best_saved: bool = False
    train_loss_sum: float = 0.0
    train_loss_count: float = 0.0
    save_index: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    def start_stage(self, index: int) -> None:
        self.stage_index = index
        self.stage_done = False
        self.epoch = 0
        self.batches_in_epoch = 0
        self.stage_step = 0
        self.best_loss = None
        self.bad_evals = 0
        self.best_saved = False
        self.train_loss_sum = 0.0
        self.train_loss_count = 0.0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True, allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> TrainerState:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainingResult:
    """What `fit` returns. history: one record per evaluation (stage, epoch, step, train/validation loss, metrics)."""

    model: nn.Module
    history: list[dict[str, Any]]
    state: TrainerState
    interrupted: bool = False
    resumed_from: str | None = None
    train_seconds: float = 0.0  # over all sessions of the run (an interrupted run's time included)


__all__ = ["BatchTransform", "LossFn", "Stage", "StepOutput", "TrainerConfig", "TrainerState", "TrainingResult"]

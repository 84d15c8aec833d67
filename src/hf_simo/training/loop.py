"""A generic Accelerate training loop: stages of trainable parameters, exact resume, sharded exact evaluation.

`Trainer(...).run()` (or `fit(...)`, the same call) trains any `nn.Module` through a sequence of `Stage`s. A stage names the parameters that learn (everything
else is frozen, and modules without trainable parameters are put in eval mode so frozen BatchNorm statistics do not
move either), its learning rate and its length; each stage gets a fresh AdamW optimizer and a one-cycle schedule
(5% warm-up by default), gradient clipping, gradient accumulation and early stopping on the validation loss.
The paper's two-stage fine-tuning is two stages (heads only, then everything); re-alignment is one stage whose
trainable parameters are adapters.

Resuming after an interruption gives the same result as an uninterrupted run:

- the shuffle order of every epoch is a function of (seed, epoch) (Accelerate's seedable sampler), and consumed
  batches are skipped with `accelerator.skip_first_batches`;
- batch transforms (augmentation, masking) draw from a generator seeded from (seed, stage, epoch, batch, process),
  never from a global stream that resuming would shift;
- `accelerator.save_state` stores model, optimizer, scheduler and every process's global RNG state (dropout);
  `trainer_state.json` stores the loop's own state (stage, epoch, batches consumed, early-stopping counters, history
  and the running training-loss sums).

A checkpoint is written into a staging folder and committed when complete (`hf_simo.training.checkpoints`), so an
interrupted save never leaves a checkpoint that loads but is half-written; resuming picks the newest complete one.

Evaluation runs on the unwrapped model, each process on its own contiguous shard of the evaluation set (no padding,
no duplicates), and sums additive statistics with `accelerator.reduce` (and gathers the per-pixel angles of the
median angular error), so the validation loss and `MultiTaskMetrics` are the same on one process or several.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..crashpoints import pause_point
from ..errors import TrainingError
from ..utils.logging import progress_bar
from .batching import batch_size_of, collate_of, dataset_of, make_eval_loader, step_generator
from .checkpoints import TRAINER_STATE_NAME, CheckpointStore
from .config import BatchTransform, LossFn, Stage, TrainerConfig, TrainerState, TrainingResult
from .optim import one_cycle_schedule, set_frozen_eval, stage_param_groups
from .validation import evaluate


class Trainer:
    """Train `model` through `stages` (`run()`); resumes from the newest checkpoint in `config.output_dir`.

    Args:
        accelerator: see `make_accelerator` (seedable sampler, manual scheduler stepping, gradient accumulation).
        model: any module; it is prepared (DDP, mixed precision) per stage, so DDP only tracks that stage's
            trainable parameters.
        train_data / eval_data: datasets (or loaders, whose dataset and collate function are used for evaluation).
            Batches are dicts of tensors. Each process evaluates its own contiguous shard of `eval_data`.
        loss_fn: `(model, batch) -> StepOutput`; it runs on the prepared model in training and on the unwrapped
            one in evaluation.
        train_transform / eval_transform: `(batch, generator) -> batch`, applied on the device (batched
            augmentation, masking); the generator is seeded per batch so resuming reproduces it.
        metrics: an object with `reset()`, `update(predictions, labels)` and `compute(accelerator)` such as
            `MultiTaskMetrics`, updated from `StepOutput.predictions` / `labels` during evaluation.
        on_evaluate: called with each history record.

    `run()` returns a `TrainingResult`; `result.model` is the unwrapped model (with the best weights of the last
    stage when early stopping restored them). The caller saves the final model. The methods are one concern each
    (setup, checkpoint, evaluation and early stopping, a stage); the files are `CheckpointStore`'s.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        model: nn.Module,
        stages: Sequence[Stage],
        train_data: Dataset | DataLoader,
        eval_data: Dataset | DataLoader | None,
        loss_fn: LossFn,
        config: TrainerConfig,
        *,
        train_transform: BatchTransform | None = None,
        eval_transform: BatchTransform | None = None,
        collate_fn: Callable | None = None,
        metrics: Any | None = None,
        on_evaluate: Callable[[dict[str, Any]], None] | None = None,
    ):
        if not stages:
            raise TrainingError("fit needs at least one Stage")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise TrainingError(f"stage names must be unique, got {names}")
        self.accelerator = accelerator
        self.model = model
        self.stages = list(stages)
        self.train_data = train_data
        self.eval_data = eval_data
        self.loss_fn = loss_fn
        self.config = config
        self.train_transform = train_transform
        self.eval_transform = eval_transform
        self.collate_fn = collate_fn
        self.metrics = metrics
        self.on_evaluate = on_evaluate
        self.output_dir = Path(config.output_dir)
        self.store = CheckpointStore(accelerator, self.output_dir, config.checkpoints_total_limit)
        self.state = TrainerState(stage_names=[s.name for s in self.stages])
        self.resume_dir: Path | None = None
        self._saved_state: str | None = None
        self._batches_per_epoch = 1
        self._optimizer: torch.optim.Optimizer | None = None
        self.model_frozen: set[str] = set()
        self._session_start = time.perf_counter()
        self._seconds_before = 0.0
        self.eval_loader = (
            make_eval_loader(eval_data, accelerator, config.eval_batch_size, collate_fn, config.dataloader_num_workers)
            if eval_data is not None
            else None
        )

    # -------------------------------------------------------------- setup

    def find_resume_point(self) -> None:
        if not self.config.resume:
            return
        checkpoint = self.store.latest()
        self.accelerator.wait_for_everyone()
        self.store.clean_stale()  # temporaries of saves an interruption cut short
        if checkpoint is None:
            return
        state = TrainerState.from_json((checkpoint / TRAINER_STATE_NAME).read_text())
        if state.stage_names != self.state.stage_names:
            raise TrainingError(
                f"checkpoint {checkpoint} was saved by a run with stages {state.stage_names}, this run has "
                f"{self.state.stage_names}; use another output folder or delete its checkpoints"
            )
        if not self.accelerator.is_main_process:  # the saved totals are the main process's consolidated ones
            state.train_loss_sum, state.train_loss_count = 0.0, 0.0
        self.state = state
        self.resume_dir = checkpoint
        self._saved_state = self._state_key()
        self._seconds_before = state.train_seconds

    def train_loader(self) -> DataLoader:
        data = self.train_data
        if isinstance(data, DataLoader):
            loader = data
        else:
            loader = DataLoader(
                data,
                batch_size=self.config.train_batch_size,
                shuffle=True,
                drop_last=self.config.drop_last,
                collate_fn=collate_of(data, self.collate_fn),
                num_workers=self.config.dataloader_num_workers,
                generator=torch.Generator().manual_seed(self.config.seed),
            )
        return loader

    # -------------------------------------------------------------- checkpoints

    def consolidate_train_loss(self) -> None:
        """Sum the processes' running training-loss totals into the main process's state (the one saved)."""
        acc, state = self.accelerator, self.state
        if acc.num_processes == 1:
            return
        sums = torch.tensor([state.train_loss_sum, state.train_loss_count], dtype=torch.float64, device=acc.device)
        sums = acc.reduce(sums, reduction="sum").tolist()
        state.train_loss_sum, state.train_loss_count = (sums[0], sums[1]) if acc.is_main_process else (0.0, 0.0)

    def _state_key(self) -> str:
        """The state minus the per-process loss totals: identical on every process, so all take the same branch."""
        return dataclasses.replace(
            self.state, train_loss_sum=0.0, train_loss_count=0.0, save_index=0, train_seconds=0.0
        ).to_json()

    def save_checkpoint(self) -> Path:
        self.consolidate_train_loss()
        if self._saved_state == self._state_key():
            return self.store.latest()  # nothing happened since the last save
        self.state.save_index += 1
        self._saved_state = self._state_key()
        self.state.train_seconds = self._elapsed()
        return self.store.save(self.state.save_index, self.state.to_json())

    def _elapsed(self) -> float:
        """Training time of this run over all sessions (resumed runs add to the interrupted ones)."""
        return self._seconds_before + (time.perf_counter() - self._session_start)

    def save_best(self, model: nn.Module, stage_index: int) -> None:
        self.store.save_best(model, stage_index, self.stages[stage_index].name)

    def restore_best(self, model: nn.Module, stage_index: int) -> None:
        self.store.restore_best(model, stage_index, self.stages[stage_index].name)

    # -------------------------------------------------------------- evaluation + early stopping

    def evaluate_and_track(self, model: nn.Module, stage: Stage, stage_index: int, epoch_end: bool) -> bool:
        """Evaluate, log, update early stopping; returns True when the stage should stop."""
        acc, state = self.accelerator, self.state
        sums = torch.tensor([state.train_loss_sum, state.train_loss_count], dtype=torch.float64, device=acc.device)
        if acc.num_processes > 1:
            sums = acc.reduce(sums, reduction="sum")
        record: dict[str, Any] = {
            "stage": stage.name,
            "epoch": state.epoch + (0 if epoch_end else state.batches_in_epoch / max(1, self._batches_per_epoch)),
            "stage_step": state.stage_step,
            "step": state.global_step,
            "train_loss": (sums[0] / sums[1]).item() if sums[1] > 0 else None,
            "lr": self._current_lr(),
        }
        state.train_loss_sum, state.train_loss_count = 0.0, 0.0
        stop = False
        if self.eval_loader is not None:
            results = evaluate(
                acc, model, self.eval_loader, self.loss_fn, self.metrics, self.eval_transform, self.config.seed
            )
            record["eval_loss"] = results.pop("loss")
            metrics = results.pop("metrics", None)
            record.update({f"eval_{k}": v for k, v in results.items()})
            if metrics is not None:
                record["eval_metrics"] = metrics
            loss = record["eval_loss"]
            improved = math.isfinite(loss) and (state.best_loss is None or loss < state.best_loss - stage.min_delta)
            if improved:
                state.best_loss = loss
                state.bad_evals = 0
                if stage.restore_best:
                    self.save_best(model, stage_index)
                    state.best_saved = True
            else:
                state.bad_evals += 1
                patience = stage.early_stopping_patience
                stop = patience is not None and state.bad_evals >= patience
            record["best_eval_loss"] = state.best_loss
            record["early_stop"] = stop
        state.history.append(record)
        flat = {k: v for k, v in record.items() if isinstance(v, (int, float)) and v is not None}
        for task, values in (record.get("eval_metrics") or {}).items():
            flat.update({f"eval/{task}/{name}": value for name, value in values.items()})
        acc.log({f"{stage.name}/{k}": v for k, v in flat.items()}, step=state.global_step)
        if self.on_evaluate is not None:
            self.on_evaluate(record)
        return stop

    def _current_lr(self) -> float | None:
        optimizer = self._optimizer
        return float(optimizer.param_groups[0]["lr"]) if optimizer is not None else None

    # -------------------------------------------------------------- stages

    def run(self) -> TrainingResult:
        acc, config, state = self.accelerator, self.config, self.state
        self._session_start = time.perf_counter()
        from .tracking import init_tracking

        init_tracking(acc, config.project_name, config.tracker_config or {})  # no-op if the caller already did
        self.find_resume_point()
        state = self.state
        resumed_from = str(self.resume_dir) if self.resume_dir else None
        requires_grad = {name: p.requires_grad for name, p in self.model.named_parameters()}
        self.model_frozen = {name for name, flag in requires_grad.items() if not flag}
        model = self.model
        interrupted = False
        try:
            for stage_index, stage in enumerate(self.stages):
                if stage_index < state.stage_index:
                    continue
                resuming = self.resume_dir is not None and state.stage_index == stage_index
                if not resuming:
                    state.start_stage(stage_index)
                model, interrupted = self.run_stage(model, stage, stage_index, resuming)
                if interrupted:
                    break
                self.resume_dir = None
        finally:
            for name, param in self.model.named_parameters():
                param.requires_grad_(requires_grad.get(name, param.requires_grad))
        return TrainingResult(
            model=self.model,
            history=list(state.history),
            state=state,
            interrupted=interrupted,
            resumed_from=resumed_from,
            train_seconds=self._elapsed(),
        )

    def run_stage(self, model: nn.Module, stage: Stage, stage_index: int, resuming: bool) -> tuple[nn.Module, bool]:
        acc, config, state = self.accelerator, self.config, self.state
        unwrapped = acc.unwrap_model(model, keep_fp32_wrapper=False)
        groups = stage_param_groups(unwrapped, stage, self.model_frozen)
        trainable = [p for g in groups for p in g["params"]]
        optimizer = torch.optim.AdamW(groups, lr=stage.learning_rate, weight_decay=stage.weight_decay)
        loader = acc.prepare_data_loader(self.train_loader())
        if len(loader) == 0:
            raise TrainingError(
                f"the training set ({len(dataset_of(self.train_data))} samples) gives no full batch of "
                f"{config.train_batch_size} per process on {acc.num_processes} process(es); lower the batch size"
            )
        accumulation = acc.gradient_accumulation_steps
        self._batches_per_epoch = len(loader)
        steps_per_epoch = math.ceil(len(loader) / accumulation)
        total_steps = stage.num_epochs * steps_per_epoch
        if stage.max_steps is not None:
            total_steps = min(total_steps, stage.max_steps)
        total_steps = max(total_steps, 1)
        scheduler = one_cycle_schedule(
            optimizer, [g.get("lr", stage.learning_rate) for g in groups], total_steps, stage.warmup_ratio
        )
        # Accelerate skips objects it prepared before; this stage needs a new DDP wrapper (its own trainable set)
        # and a fresh mixed-precision forward, so the flag set by the previous stage's `prepare` is cleared.
        if getattr(unwrapped, "_is_accelerate_prepared", False):
            unwrapped._is_accelerate_prepared = False
        model, optimizer, scheduler = acc.prepare(unwrapped, optimizer, scheduler)
        self._optimizer = optimizer
        if resuming:
            acc.load_state(str(self.resume_dir))
        progress = progress_bar(
            total=total_steps,
            initial=state.stage_step,
            desc=f"{stage.name}",
            disable=not (config.progress_bar and acc.is_local_main_process),
            dynamic_ncols=True,
        )
        interrupted = False
        window_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
        window_count = 0
        try:
            while not state.stage_done:
                if config.stop_after_steps is not None and state.global_step >= config.stop_after_steps:
                    interrupted = True
                    break
                if state.epoch >= stage.num_epochs or state.stage_step >= total_steps:
                    state.stage_done = True
                    break
                model.train()
                if config.freeze_eval_mode:
                    set_frozen_eval(acc.unwrap_model(model))
                stop_stage = False
                if state.batches_in_epoch < len(loader):
                    loader.set_epoch(state.epoch)
                    epoch_loader = (
                        acc.skip_first_batches(loader, state.batches_in_epoch) if state.batches_in_epoch else loader
                    )
                    for batch in epoch_loader:
                        if self.train_transform is not None:
                            generator = step_generator(
                                config.seed, stage_index, state.epoch, state.batches_in_epoch, acc.process_index
                            )
                            batch = self.train_transform(batch, generator)
                        size = batch_size_of(batch)
                        with acc.accumulate(model):
                            out = self.loss_fn(model, batch)
                            acc.backward(out.loss)
                            if acc.sync_gradients and config.max_grad_norm is not None:
                                acc.clip_grad_norm_(trainable, config.max_grad_norm)
                            optimizer.step()
                            optimizer.zero_grad(set_to_none=True)
                        state.batches_in_epoch += 1
                        loss_value = out.loss.detach().double()
                        state.train_loss_sum += loss_value.item() * size
                        state.train_loss_count += size
                        window_sum += loss_value
                        window_count += 1
                        if not acc.sync_gradients:
                            continue
                        if not acc.optimizer_step_was_skipped:
                            # the wrapped scheduler, stepped once per optimizer step whatever the Accelerator's
                            # step_scheduler_with_optimizer setting (total_steps counts per-process steps)
                            scheduler.scheduler.step()
                        state.stage_step += 1
                        state.global_step += 1
                        progress.update(1)
                        if config.logging_steps and state.global_step % config.logging_steps == 0:
                            mean = acc.reduce(window_sum / max(1, window_count), reduction="mean").item()
                            acc.log(
                                {f"{stage.name}/train_loss": mean, f"{stage.name}/lr": self._current_lr()},
                                step=state.global_step,
                            )
                            progress.set_postfix(loss=f"{mean:.4f}")
                            window_sum.zero_()
                            window_count = 0
                        if stage.eval_steps and state.stage_step % stage.eval_steps == 0:
                            stop_stage = self.evaluate_and_track(model, stage, stage_index, epoch_end=False)
                            model.train()
                            if config.freeze_eval_mode:
                                set_frozen_eval(acc.unwrap_model(model))
                        if state.stage_step >= total_steps or stop_stage:
                            break
                        if config.checkpointing_steps and state.global_step % config.checkpointing_steps == 0:
                            self.save_checkpoint()
                        pause_point(f"train:step-{state.global_step}")  # tests kill a run here
                        if config.stop_after_steps is not None and state.global_step >= config.stop_after_steps:
                            interrupted = True
                            break
                if interrupted:
                    break
                if stop_stage:
                    state.stage_done = True
                    break
                if state.batches_in_epoch >= len(loader):
                    # epoch end: evaluate (unless the last step just did), then move on
                    just_evaluated = bool(stage.eval_steps) and state.stage_step % stage.eval_steps == 0
                    if not just_evaluated:
                        stop_stage = self.evaluate_and_track(model, stage, stage_index, epoch_end=True)
                    state.epoch += 1
                    state.batches_in_epoch = 0
                    if stop_stage:
                        state.stage_done = True
                elif state.stage_step >= total_steps:
                    # the schedule ended mid-epoch (max_steps): evaluate once more for the record
                    self.evaluate_and_track(model, stage, stage_index, epoch_end=False)
                    state.stage_done = True
            if interrupted:
                self.save_checkpoint()
                return model, True
            self.save_checkpoint()  # stage end (before the best weights are restored, which is deterministic)
            if stage.restore_best and state.best_saved:
                self.restore_best(model, stage_index)
        finally:
            progress.close()
        state.stage_index = stage_index + 1
        state.stage_done = False
        unwrapped = acc.unwrap_model(model, keep_fp32_wrapper=False)
        acc.free_memory()
        self._optimizer = None
        return unwrapped, False


def fit(*args: Any, **kwargs: Any) -> TrainingResult:
    """`Trainer(*args, **kwargs).run()`: train `model` through `stages` (see `Trainer` for the arguments)."""
    return Trainer(*args, **kwargs).run()


__all__ = ["Trainer", "fit"]

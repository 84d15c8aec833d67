"""A generic Accelerate training loop: stages of trainable parameters, exact resume, sharded exact evaluation.

`fit` trains any `nn.Module` through a sequence of `Stage`s. A stage names the parameters that learn (everything
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

A checkpoint is written into a temporary folder and renamed when complete, so an interrupted save never leaves a
checkpoint that loads but is half-written; resuming picks the newest complete one.

Evaluation runs on the unwrapped model, each process on its own contiguous shard of the evaluation set (no padding,
no duplicates), and sums additive statistics with `accelerator.reduce`, so the validation loss and
`MultiTaskMetrics` are the same on one process or several.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, default_collate
from tqdm.auto import tqdm

from ..crashpoints import pause_point
from ..errors import TrainingError


CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
TRAINER_STATE_NAME = "trainer_state.json"
_TMP_PREFIX = ".tmp-"


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


# ---------------------------------------------------------------------------------------------------- data helpers


def one_cycle_schedule(
    optimizer: torch.optim.Optimizer, max_lr: float | list[float], total_steps: int, warmup_ratio: float = 0.05
) -> torch.optim.lr_scheduler.OneCycleLR:
    """The paper's one-cycle schedule. torch's `OneCycleLR` divides by zero when `warmup_ratio * total_steps` is
    exactly 1 (e.g. 20 steps at 5%): the warm-up is then stretched to 1.5 steps."""
    total_steps = max(int(total_steps), 1)
    if math.isclose(warmup_ratio * total_steps, 1.0):
        warmup_ratio = min(1.0, 1.5 / total_steps)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=warmup_ratio
    )


def shard_bounds(num_samples: int, num_shards: int, index: int) -> tuple[int, int]:
    """[start, end) of contiguous shard `index`: sizes differ by at most one, shards are disjoint and cover all.

    Same split as `datasets.Dataset.shard(contiguous=True)`.
    """
    if not 0 <= index < num_shards:
        raise ValueError(f"shard index {index} out of range for {num_shards} shards")
    div, mod = divmod(num_samples, num_shards)
    start = div * index + min(index, mod)
    return start, start + div + (1 if index < mod else 0)


def shard_dataset(dataset: Dataset, num_shards: int, index: int) -> Dataset:
    """This process's disjoint contiguous shard of an evaluation set (no padding, no duplicated samples)."""
    if num_shards == 1:
        return dataset
    start, end = shard_bounds(len(dataset), num_shards, index)
    return Subset(dataset, range(start, end))


def _as_dataset(data: Dataset | DataLoader) -> Dataset:
    return data.dataset if isinstance(data, DataLoader) else data


def _collate_of(data: Dataset | DataLoader, collate_fn: Callable | None) -> Callable:
    if collate_fn is not None:
        return collate_fn
    if isinstance(data, DataLoader) and data.collate_fn is not None:
        return data.collate_fn
    return default_collate


def make_eval_loader(
    data: Dataset | DataLoader,
    accelerator: Accelerator,
    batch_size: int,
    collate_fn: Callable | None = None,
    num_workers: int = 0,
) -> DataLoader:
    """A loader over this process's shard of `data` (a dataset, or a loader whose dataset is used)."""
    dataset = _as_dataset(data)
    if len(dataset) < accelerator.num_processes:
        raise TrainingError(
            f"the evaluation set has {len(dataset)} samples, fewer than the {accelerator.num_processes} processes; "
            "use a larger evaluation set or fewer processes"
        )
    shard = shard_dataset(dataset, accelerator.num_processes, accelerator.process_index)
    return DataLoader(
        shard,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=_collate_of(data, collate_fn),
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),  # keeps the global RNG (dropout) untouched by iteration
    )


def _step_generator(*parts: int) -> torch.Generator:
    """A generator seeded from integers, so a batch's randomness does not depend on what ran before it."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def _batch_size(batch: Any) -> int:
    if isinstance(batch, Mapping):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                return int(value.shape[0])
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return int(batch[0].shape[0])
    raise TrainingError("cannot infer the batch size: batches must be dicts (or tuples) of tensors")


# ------------------------------------------------------------------------------------------------- parameter setup


def _matches(name: str, prefixes: Sequence[str]) -> bool:
    return any(name.startswith(prefix) for prefix in prefixes)


def no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """Biases, norms, tokens and position embeddings get no weight decay, as is standard for ViTs."""
    return param.ndim < 2 or any(k in name for k in ("position_embeddings", "cls_token", "register_tokens"))


def stage_param_groups(model: nn.Module, stage: Stage, model_frozen: set[str] | None = None) -> list[dict[str, Any]]:
    """Freeze everything but the stage's parameters; return AdamW parameter groups (no weight decay on biases,
    norms, tokens and position embeddings, as is standard for ViTs).

    model_frozen: names of parameters the model itself keeps frozen (see `Stage.keep_model_frozen`).
    """
    frozen = tuple(stage.frozen)
    excluded = set(model_frozen or ()) if stage.keep_model_frozen else set()
    for param in model.parameters():
        param.requires_grad_(False)
    if callable(stage.trainable):
        groups = list(stage.trainable(model))
        for group in groups:
            group["params"] = list(group["params"])
            for param in group["params"]:
                param.requires_grad_(True)
            group.setdefault("weight_decay", stage.weight_decay)
        for name, param in model.named_parameters():
            if _matches(name, frozen) or name in excluded:
                param.requires_grad_(False)
        groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in groups]
    else:
        if isinstance(stage.trainable, str):
            raise TypeError(f"Stage.trainable must be a list of prefixes, got the string {stage.trainable!r}")
        decay, no_decay = [], []
        for name, param in model.named_parameters():
            if not _matches(name, stage.trainable) or _matches(name, frozen) or name in excluded:
                continue
            param.requires_grad_(True)
            (no_decay if no_weight_decay(name, param) else decay).append(param)
        groups = [{"params": decay, "weight_decay": stage.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise TrainingError(f"stage {stage.name!r} has no trainable parameters (trainable={stage.trainable!r})")
    return groups


def _set_frozen_eval(model: nn.Module) -> None:
    """Modules without a trainable parameter (themselves or below) run in eval mode: frozen means frozen, BatchNorm
    statistics and dropout included."""

    def visit(module: nn.Module) -> bool:
        child_trainable = [visit(child) for child in module.children()]
        own = any(p.requires_grad for p in module.parameters(recurse=False))
        trainable = own or any(child_trainable)
        if not trainable:
            module.eval()
        return trainable

    visit(model)


# ------------------------------------------------------------------------------------------------- checkpoints


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under `output_dir/checkpoints`, oldest first (temporary folders are ignored)."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("checkpoint-")]
    found = [p for p in found if (p / TRAINER_STATE_NAME).is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(
    accelerator: Accelerator,
    model: nn.Module,
    loader: DataLoader,
    loss_fn: LossFn,
    metrics: Any | None = None,
    transform: BatchTransform | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Validation loss (mean over samples), averaged logs and, with `metrics`, `metrics.compute(accelerator)`.

    `loader` must hold this process's disjoint shard (see `make_eval_loader`). Sums are reduced across processes,
    so the result does not depend on the number of processes. Runs the unwrapped model: shards may differ in size
    and no collective may happen inside the forward.
    """
    module = accelerator.unwrap_model(model)
    was_training = module.training
    module.eval()
    device = accelerator.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    log_sums: dict[str, torch.Tensor] = {}
    log_counts: dict[str, torch.Tensor] = {}
    if metrics is not None:
        metrics.reset()
    try:
        for index, batch in enumerate(loader):
            batch = send_to_device(batch, device)
            if transform is not None:
                batch = transform(batch, _step_generator(seed, 7919, index, accelerator.process_index))
            size = _batch_size(batch)
            with accelerator.autocast():
                out = loss_fn(module, batch)
            per_sample = out.sample_losses if out.sample_losses is not None else out.loss.detach().expand(size)
            loss_sum += per_sample.double().sum()
            count += per_sample.numel()
            for key, value in out.logs.items():
                value = value.detach().double()
                values = value if value.ndim else value.expand(size)
                log_sums[key] = log_sums.get(key, torch.zeros_like(loss_sum)) + values.sum()
                log_counts[key] = log_counts.get(key, torch.zeros_like(loss_sum)) + values.numel()
            if metrics is not None:
                metrics.update(out.predictions, out.labels)
    finally:
        module.train(was_training)
    if accelerator.num_processes > 1:
        keys = sorted(log_sums)
        packed = torch.stack([loss_sum, count] + [log_sums[k] for k in keys] + [log_counts[k] for k in keys])
        packed = accelerator.reduce(packed, reduction="sum")
        loss_sum, count = packed[0], packed[1]
        log_sums = {k: packed[2 + i] for i, k in enumerate(keys)}
        log_counts = {k: packed[2 + len(keys) + i] for i, k in enumerate(keys)}
    results: dict[str, Any] = {"loss": (loss_sum / count.clamp(min=1)).item()}
    for key in sorted(log_sums):
        results[key] = (log_sums[key] / log_counts[key].clamp(min=1)).item()
    if metrics is not None:
        results["metrics"] = metrics.compute(accelerator)
    return results


# ------------------------------------------------------------------------------------------------- the loop


class _Run:
    """State of one `fit` call; split into methods so each concern (setup, step, eval, checkpoint) reads alone."""

    def __init__(
        self,
        accelerator: Accelerator,
        model: nn.Module,
        stages: Sequence[Stage],
        train_data: Dataset | DataLoader,
        eval_data: Dataset | DataLoader | None,
        loss_fn: LossFn,
        config: TrainerConfig,
        train_transform: BatchTransform | None,
        eval_transform: BatchTransform | None,
        collate_fn: Callable | None,
        metrics: Any | None,
        on_evaluate: Callable[[dict[str, Any]], None] | None,
    ):
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
        checkpoint = latest_checkpoint(self.output_dir)
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:  # temporaries of saves an interruption cut short
            for folder in (self.output_dir / CHECKPOINTS_DIR, self.output_dir / BEST_DIR):
                for stale in folder.glob(f"{_TMP_PREFIX}*") if folder.is_dir() else ():
                    if stale.is_dir():
                        shutil.rmtree(stale, ignore_errors=True)
                    else:
                        stale.unlink(missing_ok=True)
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
                collate_fn=_collate_of(data, self.collate_fn),
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
        acc = self.accelerator
        self.consolidate_train_loss()
        if self._saved_state == self._state_key():
            return latest_checkpoint(self.output_dir)  # nothing happened since the last save
        self.state.save_index += 1
        self._saved_state = self._state_key()
        self.state.train_seconds = self._elapsed()
        root = self.output_dir / CHECKPOINTS_DIR
        name = f"checkpoint-{self.state.save_index:06d}"
        tmp = root / f"{_TMP_PREFIX}{name}"
        final = root / name
        if acc.is_main_process:
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            (tmp / TRAINER_STATE_NAME).write_text(self.state.to_json())
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)  # the commit: a checkpoint without trainer_state.json is never picked up
            limit = self.config.checkpoints_total_limit
            if limit is not None and limit > 0:
                for old in list_checkpoints(self.output_dir)[:-limit]:
                    shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return final

    def _elapsed(self) -> float:
        """Training time of this run over all sessions (resumed runs add to the interrupted ones)."""
        return self._seconds_before + (time.perf_counter() - self._session_start)

    def best_path(self, stage_index: int) -> Path:
        return self.output_dir / BEST_DIR / f"stage{stage_index}-{self.stages[stage_index].name}.safetensors"

    def save_best(self, model: nn.Module, stage_index: int) -> None:
        acc = self.accelerator
        path = self.best_path(stage_index)
        state_dict = acc.get_state_dict(model)
        if acc.is_main_process:
            from safetensors.torch import save_file

            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{_TMP_PREFIX}{path.name}")
            save_file({k: v.detach().contiguous().cpu() for k, v in state_dict.items()}, str(tmp))
            os.replace(tmp, path)
        acc.wait_for_everyone()

    def restore_best(self, model: nn.Module, stage_index: int) -> None:
        from safetensors.torch import load_file

        path = self.best_path(stage_index)
        if not path.is_file():
            raise TrainingError(f"the best weights of stage {self.stages[stage_index].name!r} are missing ({path})")
        state_dict = load_file(str(path))  # on the CPU; load_state_dict copies onto each parameter's device
        self.accelerator.unwrap_model(model).load_state_dict(state_dict)

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
        from .utils import init_tracking

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
                f"the training set ({len(_as_dataset(self.train_data))} samples) gives no full batch of "
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
        progress = tqdm(
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
                    _set_frozen_eval(acc.unwrap_model(model))
                stop_stage = False
                if state.batches_in_epoch < len(loader):
                    loader.set_epoch(state.epoch)
                    epoch_loader = (
                        acc.skip_first_batches(loader, state.batches_in_epoch) if state.batches_in_epoch else loader
                    )
                    for batch in epoch_loader:
                        if self.train_transform is not None:
                            generator = _step_generator(
                                config.seed, stage_index, state.epoch, state.batches_in_epoch, acc.process_index
                            )
                            batch = self.train_transform(batch, generator)
                        size = _batch_size(batch)
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
                                _set_frozen_eval(acc.unwrap_model(model))
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


def fit(
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
) -> TrainingResult:
    """Train `model` through `stages`; resumes from the newest checkpoint in `config.output_dir` if there is one.

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

    Returns a `TrainingResult`; `result.model` is the unwrapped model (with the best weights of the last stage when
    early stopping restored them). The caller saves the final model.
    """
    if not stages:
        raise TrainingError("fit needs at least one Stage")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise TrainingError(f"stage names must be unique, got {names}")
    run = _Run(
        accelerator,
        model,
        stages,
        train_data,
        eval_data,
        loss_fn,
        config,
        train_transform,
        eval_transform,
        collate_fn,
        metrics,
        on_evaluate,
    )
    return run.run()


__all__ = [
    "one_cycle_schedule",
    "BatchTransform",
    "LossFn",
    "Stage",
    "StepOutput",
    "TrainerConfig",
    "TrainerState",
    "TrainingError",
    "TrainingResult",
    "evaluate",
    "fit",
    "latest_checkpoint",
    "list_checkpoints",
    "make_eval_loader",
    "shard_bounds",
    "shard_dataset",
    "no_weight_decay",
    "stage_param_groups",
]

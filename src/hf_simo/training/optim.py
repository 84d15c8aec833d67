"""What a stage trains and how: AdamW parameter groups of a `Stage` (everything else frozen), the paper's one-cycle
schedule, and eval mode for the modules a stage freezes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import TrainingError
from .config import Stage


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


def set_frozen_eval(model: nn.Module) -> None:
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


__all__ = ["no_weight_decay", "one_cycle_schedule", "set_frozen_eval", "stage_param_groups"]

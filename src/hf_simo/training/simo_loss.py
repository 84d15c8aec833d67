"""The `SimoModel` loss function the recipes train with: the unweighted mean of the task losses on a batch in the
shared schema (and, in evaluation, per-sample losses, predictions and labels for the metrics).

Datasets and their checks are `hf_simo.data.loading`; the batched augmentation `hf_simo.data.transforms`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..configuration_simo import TaskSpec
from ..losses import task_loss
from ..processing import normalize_images
from .config import LossFn, StepOutput


def _resolved(name: str, spec: TaskSpec | Mapping[str, Any]) -> TaskSpec:
    """A spec with its defaults (loss, ignore index, invalid value) filled in, as the model resolves it."""
    spec = TaskSpec.from_dict(name, spec)
    return spec.resolved(name, max(spec.layers) if spec.layers else 12)


def make_simo_loss_fn(task_specs: Mapping[str, TaskSpec | Mapping[str, Any]]) -> LossFn:
    """`SimoModel` loss on a batch in the shared schema: the unweighted mean of the task losses.

    `task_specs`: the model's (``model.config.tasks``) or a dataset's specs. In evaluation it also returns
    per-sample losses (the mean over tasks of each sample's task loss), so the
    validation loss is the same however the set is batched or sharded, plus predictions and labels for metrics.
    """
    specs = {name: _resolved(name, spec) for name, spec in task_specs.items()}

    def loss_fn(model: torch.nn.Module, batch: dict[str, Any]) -> StepOutput:
        labels = {name: batch[name] for name in specs if name in batch}
        if not labels:
            raise KeyError(f"the batch has none of the trained tasks {list(specs)}; its keys are {list(batch)}")
        pixel_values = normalize_images(batch["image"])
        out = model(pixel_values=pixel_values, labels=labels, tasks=list(labels))
        logs = {f"loss_{name}": value.detach() for name, value in out.task_losses.items()}
        if model.training:
            return StepOutput(loss=out.loss, logs=logs)
        per_task = []
        for name, target in labels.items():
            resolved = specs[name]
            prediction = out.predictions[name]
            target = target.unsqueeze(1) if target.ndim == 3 and not resolved.is_classification else target
            per_task.append(
                torch.stack(
                    [task_loss(resolved, prediction[i : i + 1], target[i : i + 1]) for i in range(len(target))]
                )
            )
            logs[f"loss_{name}"] = per_task[-1].detach()
        sample_losses = torch.stack(per_task).mean(dim=0)
        return StepOutput(
            loss=out.loss, sample_losses=sample_losses, logs=logs, predictions=out.predictions, labels=labels
        )

    return loss_fn


__all__ = ["make_simo_loss_fn"]

"""Per-task losses with masking: cross-entropy, masked L1 and the dot-product (cosine) loss for normals.

Every loss is a mean over the *valid* pixels of the batch and is exactly zero, not NaN, when no pixel is valid,
so a batch whose labels are all ignored does not poison the multi-task mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .configuration_simo import TaskSpec


def unit_vectors(x: torch.Tensor, dim: int = 1, eps: float = 1e-12) -> torch.Tensor:
    """x / max(‖x‖, eps) along `dim`, as `F.normalize`, but ~20× faster on CPU for a channel dim of 3: the norm is a
    sum of squares instead of `linalg.vector_norm`'s strided reduction (it runs on every normals prediction)."""
    return x * torch.rsqrt((x * x).sum(dim=dim, keepdim=True).clamp_min(eps * eps))


def valid_mask(spec: TaskSpec, labels: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool mask of the pixels that count for loss and metrics."""
    if spec.is_classification:
        return labels != spec.ignore_index
    if spec.invalid_value is None:
        return torch.ones(labels.shape[0], *labels.shape[2:], dtype=torch.bool, device=labels.device)
    return (labels != spec.invalid_value).any(dim=1)


def _safe_mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    return total / count.clamp(min=1).to(total.dtype)


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    total = F.cross_entropy(logits.float(), labels, ignore_index=ignore_index, reduction="sum")
    return _safe_mean(total, (labels != ignore_index).sum())


def masked_l1_loss(pred: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over valid pixels and all channels."""
    diff = (pred.float() - labels.float()).abs() * mask.unsqueeze(1)
    return _safe_mean(diff.sum(), mask.sum() * pred.shape[1])


def cosine_loss(pred: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - mean dot product between unit predicted and ground-truth normals over valid pixels (as in MTAN)."""
    dot = (unit_vectors(pred.float()) * unit_vectors(labels.float())).sum(dim=1)
    count = mask.sum()
    return (1.0 - _safe_mean((dot * mask).sum(), count)) * (count > 0)


def task_loss(spec: TaskSpec, prediction: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The spec's loss for one task. `prediction` is the model output at the label resolution."""
    if spec.loss == "cross_entropy":
        return cross_entropy_loss(prediction, labels, spec.ignore_index)
    mask = valid_mask(spec, labels)
    if spec.loss == "l1":
        return masked_l1_loss(prediction, labels, mask)
    if spec.loss == "cosine":
        return cosine_loss(prediction, labels, mask)
    raise ValueError(f"unknown loss {spec.loss!r}")


__all__ = ["cosine_loss", "cross_entropy_loss", "masked_l1_loss", "task_loss", "unit_vectors", "valid_mask"]

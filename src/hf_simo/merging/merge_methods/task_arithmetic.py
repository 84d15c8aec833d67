"""Task Arithmetic (Ilharco et al. 2023): tau_MTL = sum_t w_t tau_t."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import MethodSpec
from .common import TaskVectors, Weight


def task_arithmetic(task_vectors: TaskVectors, weights: Sequence[Weight] | None = None) -> torch.Tensor:
    """Task Arithmetic (Ilharco et al. 2023): tau = sum_t w_t tau_t; the caller applies theta_0 + alpha * tau."""
    merged = None
    for t in range(len(task_vectors)):
        x = task_vectors[t]
        merged = torch.zeros_like(x) if merged is None else merged
        if weights is None:
            merged += x
        else:
            merged += weights[t] * x
    return merged


def _merge(task_vectors, weights, options, *, key, thresholds, majority, tasks=None) -> torch.Tensor:
    return task_arithmetic(task_vectors, weights)


SPEC = MethodSpec("task_arithmetic", "theta_0 + alpha * sum_t w_t tau_t", merge=_merge)

__all__ = ["SPEC", "task_arithmetic"]

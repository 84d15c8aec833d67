"""Magnitude pruning (PEFT `magnitude_prune`, tall_masks' `topk` + sum): trim each task as TIES does, then sum."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import REQUIRED, MethodSpec, choice_option, density_option
from .common import LazyMap, TaskVectors, Weight, check_density, magnitude_threshold, trim
from .task_arithmetic import task_arithmetic


def magnitude_prune(
    task_vectors: TaskVectors,
    weights: Sequence[Weight] | None = None,
    *,
    density: float,
    thresholds: Sequence[float | None] | None = None,
) -> torch.Tensor:
    """Magnitude pruning (PEFT `magnitude_prune`, tall_masks' `topk` + sum): trim each task as TIES does, then sum."""
    check_density(density)

    def trimmed(t: int, x: torch.Tensor) -> torch.Tensor:
        return trim(x, thresholds[t] if thresholds is not None else magnitude_threshold(x, density))

    return task_arithmetic(LazyMap(task_vectors, trimmed), weights)


def _merge(task_vectors, weights, options, *, key, thresholds, majority, tasks=None) -> torch.Tensor:
    return magnitude_prune(task_vectors, weights, density=options["density"], thresholds=thresholds)


SPEC = MethodSpec(
    "magnitude",
    "trim top-density magnitudes per task, then sum",
    {"density": (REQUIRED, density_option), "scope": ("global", choice_option("scope", ("global", "tensor")))},
    merge=_merge,
    trims=True,
)

__all__ = ["SPEC", "magnitude_prune"]

"""Model Breadcrumbs (Davari & Belilovsky 2024): per-tensor masking of the largest and smallest magnitudes."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import REQUIRED, MethodSpec, density_option, number_option
from .common import LazyMap, TaskVectors, Weight, check_density
from .task_arithmetic import task_arithmetic


def breadcrumbs_mask(tensor: torch.Tensor, density: float, gamma: float) -> torch.Tensor | None:
    """Model Breadcrumbs (Davari & Belilovsky 2024), per tensor: drop the `gamma` largest magnitudes (outliers)
    and the smallest ones, keeping `int(density * n)` entries (mergekit's `magnitude_outliers` counts). Ranks come
    from a stable sort, so ties are broken by position, deterministically. None means "keep all" (density >= 1)."""
    if density >= 1:
        return None
    n = tensor.numel()
    target = int(density * n)
    n_top = int(gamma * n)
    n_bot = n - target - n_top
    if n_bot < 0:
        n_top += n_bot
        n_bot = 0
    order = torch.sort(tensor.abs().reshape(-1), stable=True).indices
    mask = torch.zeros(n, dtype=torch.bool, device=tensor.device)
    mask[order[n_bot : n - n_top]] = True
    return mask.reshape(tensor.shape)


def breadcrumbs(
    task_vectors: TaskVectors, weights: Sequence[Weight] | None = None, *, density: float, gamma: float = 0.01
) -> torch.Tensor:
    """Model Breadcrumbs: per-tensor outlier and small-magnitude masking of each task vector, then a sum."""
    check_density(density)

    def masked(t: int, x: torch.Tensor) -> torch.Tensor:
        mask = breadcrumbs_mask(x, density, gamma)
        return x if mask is None else x * mask

    return task_arithmetic(LazyMap(task_vectors, masked), weights)


def _merge(task_vectors, weights, options, *, key, thresholds, majority, tasks=None) -> torch.Tensor:
    return breadcrumbs(task_vectors, weights, density=options["density"], gamma=options["gamma"])


SPEC = MethodSpec(
    "breadcrumbs",
    "per-tensor masking of the largest (gamma) and smallest magnitudes, then sum",
    {"density": (REQUIRED, density_option), "gamma": (0.01, number_option("gamma", 0.0, 1.0))},
    merge=_merge,
)

__all__ = ["SPEC", "breadcrumbs", "breadcrumbs_mask"]

"""LiNeS (Wang et al. 2025): scale tau_MTL by alpha + beta * depth / (L - 1) per block, on a Task Arithmetic or
TIES base. The merge function returns the base's tau_MTL; the layer scale is applied per coefficient group by
`hf_simo.merging.merge_methods.final_scale`."""

from __future__ import annotations

import torch

from .base import REQUIRED, MethodSpec, number_option
from .ties import merge_base, ties_base_options


def lines_scales(num_layers: int, alpha: float, beta: float) -> list[float]:
    """LiNeS (Wang et al. 2025) layer scaling: alpha + beta * l / (L - 1) for block l, alpha outside the blocks.

    Returned per coefficient group (see `layer_groups`): [embeddings, block 0, ..., block L-1, final layernorm].
    """
    denominator = max(num_layers - 1, 1)
    return [alpha] + [alpha + beta * (layer / denominator) for layer in range(num_layers)] + [alpha]


def lines_auto_alpha(sum_sq: float, merged_sq: float, num_tasks: int) -> float:
    """LiNeS' multi-task alpha: ||sum_t tau_t|| / ||tau_MTL|| / T (1/T for Task Arithmetic), as its code sets it."""
    if merged_sq == 0.0:
        return 1.0 / num_tasks
    return (sum_sq**0.5) / (merged_sq**0.5) / num_tasks


def _merge(task_vectors, weights, options, *, key, thresholds, majority, tasks=None) -> torch.Tensor:
    return merge_base(task_vectors, weights, options, thresholds=thresholds, majority=majority)


SPEC = MethodSpec(
    "lines",
    "LiNeS: scale tau_MTL by alpha + beta * depth / (L - 1) per block",
    {
        "beta": (REQUIRED, number_option("beta")),
        "lines_alpha": (None, number_option("lines_alpha")),
        **ties_base_options(),
    },
    merge=_merge,
    ties_base=True,
)

__all__ = ["SPEC", "lines_auto_alpha", "lines_scales"]

"""TIES-Merging (Yadav et al. 2023): trim, elect signs, disjoint merge; and the TIES base of consensus, TALL masks
and LiNeS (`ties_base_options`, `merge_base`).

The elected sign is the sign of the sum of the trimmed vectors, entries whose sum is 0 get the sign of the sum of all
elected signs (counted over the given tensors, or passed in as `majority` when the streaming merge counted them over
the whole encoder), and the disjoint mean divides by the number of sign-agreeing non-zero entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .base import BASE_METHODS, MethodSpec, choice_option, density_option
from .common import LazyMap, TaskVectors, Weight, check_density, magnitude_threshold, trim
from .task_arithmetic import task_arithmetic


def sign_count(sign: torch.Tensor) -> int:
    """(# positive) - (# negative) elected signs, exact; additive over tensors, so a global majority streams."""
    return int(sign.sum(dtype=torch.float64).item())


def majority_sign(sign: torch.Tensor) -> float:
    """Sign of the sum of elected signs, counted exactly (the reference's `sign(sign_to_mult.sum())`)."""
    count = sign_count(sign)
    return float(count > 0) - float(count < 0)


def elect_sign(trimmed: Sequence[torch.Tensor], majority: float | None = None) -> torch.Tensor:
    """TIES "elect": sign of the sum of the (trimmed) task vectors; zeros get `majority` (computed when None)."""
    total = None
    for t in range(len(trimmed)):
        x = trimmed[t]
        total = torch.zeros_like(x) if total is None else total
        total += x
    sign = torch.sign(total)
    if majority is None:
        majority = majority_sign(sign)
    if majority != 0:
        sign.masked_fill_(sign == 0, majority)
    return sign


def disjoint_merge(
    trimmed: Sequence[torch.Tensor],
    sign: torch.Tensor,
    weights: Sequence[Weight] | None = None,
    aggregate: str = "mean",
) -> torch.Tensor:
    """TIES "disjoint merge": per entry, combine the task values that agree with the elected sign.

    `mean` divides the (weighted) sum by the number of agreeing non-zero entries (at least 1), `sum` does not (the
    TALL-mask/consensus variant). As in the reference, an elected sign of 0 (possible only when the global majority
    is itself a tie) selects the negative entries: `where(sign > 0, x > 0, x < 0)`, computed as `x * s > 0` with
    s = +1 where sign > 0 and -1 elsewhere.
    """
    if aggregate not in ("mean", "sum"):
        raise ValueError(f"unknown disjoint aggregate {aggregate!r}; use 'mean' or 'sum'")
    merged = torch.zeros_like(sign)
    count = torch.zeros_like(sign, dtype=torch.int32)
    selector = torch.where(sign > 0, 1.0, -1.0).to(sign.dtype)
    for t in range(len(trimmed)):
        x = trimmed[t]
        keep = (x * selector) > 0
        if weights is None:
            merged.addcmul_(x, keep)  # x * keep is exact (x or 0), so this equals merged += x * keep
        else:
            merged += (x * keep) * weights[t]
        count += keep
    if aggregate == "mean":
        return merged / torch.clamp(count, min=1)
    return merged


def ties(
    task_vectors: TaskVectors,
    weights: Sequence[Weight] | None = None,
    *,
    density: float = 0.2,
    aggregate: str = "mean",
    thresholds: Sequence[float | None] | None = None,
    majority: float | None = None,
) -> torch.Tensor:
    """TIES-Merging (Yadav et al. 2023): trim to the top-`density` magnitudes, elect signs, disjoint mean.

    The scope of the trim and of the zero-sign majority is the tensor given (pass flattened whole-encoder vectors for
    the reference's global trim), unless `thresholds` (one per task) and `majority` are given. Weights scale the
    trimmed values in the disjoint merge, as PEFT does; the sign election uses the unweighted trimmed vectors.
    """
    check_density(density)
    computed: list[float | None] = [None] * len(task_vectors)

    def trimmed_first(t: int, x: torch.Tensor) -> torch.Tensor:
        if thresholds is None:
            computed[t] = magnitude_threshold(x, density)
        return trim(x, computed[t] if thresholds is None else thresholds[t])

    sign = elect_sign(LazyMap(task_vectors, trimmed_first), majority)
    final = list(thresholds) if thresholds is not None else computed
    return disjoint_merge(LazyMap(task_vectors, lambda t, x: trim(x, final[t])), sign, weights, aggregate)


def trim_options() -> dict[str, tuple[Any, Any]]:
    """TIES' own options and defaults: density, scope of the trim, disjoint aggregate."""
    return {
        "density": (0.2, density_option),
        "scope": ("global", choice_option("scope", ("global", "tensor"))),
        "aggregate": ("mean", choice_option("aggregate", ("mean", "sum"))),
    }


def ties_base_options() -> dict[str, tuple[Any, Any]]:
    """The options of a method built on Task Arithmetic or TIES (`base_method`, then TIES' own with TIES' defaults,
    which apply to base_method='ties' only): defined once, so consensus, TALL masks and LiNeS agree with TIES."""
    return {"base_method": ("task_arithmetic", choice_option("base_method", BASE_METHODS)), **trim_options()}


def merge_base(
    task_vectors: TaskVectors,
    weights: Sequence[Weight] | None,
    options: Mapping[str, Any],
    *,
    thresholds: Sequence[float | None] | None,
    majority: float | None,
) -> torch.Tensor:
    """tau_MTL of the base method (Task Arithmetic or TIES) of consensus, TALL masks and LiNeS."""
    if options["base_method"] == "ties":
        return _merge(task_vectors, weights, options, key="", thresholds=thresholds, majority=majority)
    return task_arithmetic(task_vectors, weights)


def _merge(task_vectors, weights, options, *, key, thresholds, majority, tasks=None) -> torch.Tensor:
    density, aggregate = options["density"], options["aggregate"]
    return ties(task_vectors, weights, density=density, aggregate=aggregate, thresholds=thresholds, majority=majority)


SPEC = MethodSpec(
    "ties",
    "trim top-density magnitudes, elect signs, disjoint mean",
    trim_options(),
    merge=_merge,
    trims=True,
    elects_signs=True,
)

__all__ = [
    "SPEC",
    "disjoint_merge",
    "elect_sign",
    "majority_sign",
    "merge_base",
    "sign_count",
    "ties",
    "ties_base_options",
    "trim_options",
]

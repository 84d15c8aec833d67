"""Building blocks every merging method shares: task vectors, the TIES magnitude trim, lazy per-task views.

Pure tensor functions (no I/O), in the spirit of `peft.utils.merge_utils`. Every method takes `task_vectors` as a
*sequence* of T tensors of one shape: either the flattened whole encoder (the "global" scope of the TIES reference
implementation) or one tensor of it (the "per tensor" scope of PEFT and mergekit). The streaming merge passes a lazy
sequence that reads a task's tensor from disk on each access, so the methods access each task at most twice and
accumulate over tasks in order (`acc += x_t`), one task at a time: memory does not grow with T, and the streamed and
in-memory results are bitwise identical.

Conventions (cited per function): the reference TIES trim is `|tau| >= kthvalue(|tau|, d - int(d * density))`
(ties at the threshold are kept; with distinct magnitudes that keeps int(d * density) + 1 entries, one more than
PEFT's and mergekit's `topk`; both scopes here follow the reference).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ...errors import MergeOptionError
from ..select import kth_rank, kth_smallest, kth_smallest_magnitude


Weight = float | torch.Tensor
TaskVectors = Sequence[torch.Tensor]


def check_density(density: float) -> None:
    """A density is the fraction of entries kept: in (0, 1]."""
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 < density <= 1:
        raise MergeOptionError(f"density must be in (0, 1] (the fraction of entries kept), got {density!r}")


def task_vector(finetuned: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """tau = theta_t - theta_0, computed in float32 whatever the stored dtypes."""
    return finetuned.to(torch.float32) - base.to(torch.float32)


def magnitude_threshold(tensor: torch.Tensor, density: float) -> float | None:
    """The reference TIES threshold: `kthvalue(|x|, n - int(n * density))`; None when everything is kept.

    float32 tensors use the exact radix selection of `select` (same value, faster); others call `kthvalue`.
    """
    rank = kth_rank(tensor.numel(), density)
    if rank is None:
        return None
    if tensor.dtype == torch.float32:
        return kth_smallest_magnitude(tensor, rank)
    return kth_smallest(tensor.abs().reshape(-1), rank)


def trim(tensor: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """Zero the entries below `threshold` in magnitude (entries equal to it are kept), as `M * (|M| >= kth)`.

    For float32 this is one fused `hardshrink` with lambda = the float32 just below the threshold: |x| > prev(t)
    and |x| >= t select the same floats, without the abs/mask/product temporaries.
    """
    if threshold is None or threshold <= 0:
        return tensor
    if tensor.dtype != torch.float32:
        return tensor * (tensor.abs() >= threshold)
    below = torch.nextafter(torch.tensor(threshold, dtype=torch.float32), torch.tensor(0.0, dtype=torch.float32))
    return torch.nn.functional.hardshrink(tensor, float(below))


class LazyMap(Sequence):
    """A lazy view `fn(t, seq[t])` over a sequence, re-evaluated on each access (no copies of all tasks)."""

    def __init__(self, seq: Sequence[torch.Tensor], fn: Callable[[int, torch.Tensor], torch.Tensor]):
        self.seq, self.fn = seq, fn

    def __len__(self) -> int:
        return len(self.seq)

    def __getitem__(self, index):
        if isinstance(index, slice):
            raise TypeError("slicing is not supported")
        return self.fn(index, self.seq[index])


def apply_task_vector(base: torch.Tensor, merged: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """theta = theta_0 + scale * tau, in float32 (scale = alpha, times the layer scale for LiNeS)."""
    return base.to(torch.float32) + scale * merged


def squared_norm(tensor: torch.Tensor) -> float:
    """||x||^2 accumulated in float64 (per tensor, then summed over tensors in key order by the callers)."""
    return float(torch.linalg.vector_norm(tensor, dtype=torch.float64) ** 2)


__all__ = [
    "LazyMap",
    "TaskVectors",
    "Weight",
    "apply_task_vector",
    "check_density",
    "magnitude_threshold",
    "squared_norm",
    "task_vector",
    "trim",
]

"""TALL masks and consensus merging (Wang et al. 2024), on a Task Arithmetic or TIES base.

TALL masks give each task its own encoder theta_0 + alpha * m_t * tau_MTL, which one SIMO encoder cannot hold: the
`tall_mask` method returns the base's tau_MTL and `hf_simo.merging.search` applies each task's mask when it scores
them; `consensus` is their one-encoder form.
"""

from __future__ import annotations

import torch

from .base import MethodSpec, integer_option, number_option
from .common import TaskVectors
from .ties import merge_base, ties_base_options


def tall_mask(task_vector_t: torch.Tensor, merged: torch.Tensor, tall_lambda: float) -> torch.Tensor:
    """TALL mask (Wang et al. 2024): m_t = |tau_t| >= lambda * |tau_MTL - tau_t| (the paper's `>=`; the official
    code's `>` differs only where both sides are equal, e.g. all-zero entries, which never changes merged weights)."""
    return task_vector_t.abs() >= tall_lambda * (merged - task_vector_t).abs()


def tall_masks(task_vectors: TaskVectors, merged: torch.Tensor, tall_lambda: float) -> list[torch.Tensor]:
    """The TALL masks of all tasks (T boolean tensors): each task's encoder is theta_0 + m_t * tau_MTL."""
    return [tall_mask(task_vectors[t], merged, tall_lambda) for t in range(len(task_vectors))]


def consensus(
    task_vectors: TaskVectors, merged: torch.Tensor, *, tall_lambda: float, min_agreement: int = 2
) -> torch.Tensor:
    """Consensus merging (Wang et al. 2024): keep the entries of tau_MTL that at least `min_agreement` TALL masks
    activate (2 removes "selfish" and "catastrophic" weights)."""
    count = torch.zeros_like(merged, dtype=torch.int32)
    for t in range(len(task_vectors)):
        count += tall_mask(task_vectors[t], merged, tall_lambda)
    return merged * (count >= min_agreement)


def _merge_consensus(task_vectors, weights, options, *, key, thresholds, majority, tasks=None) -> torch.Tensor:
    merged = merge_base(task_vectors, weights, options, thresholds=thresholds, majority=majority)
    return consensus(task_vectors, merged, tall_lambda=options["tall_lambda"], min_agreement=options["min_agreement"])


def _merge_tall_mask(task_vectors, weights, options, *, key, thresholds, majority, tasks=None) -> torch.Tensor:
    return merge_base(task_vectors, weights, options, thresholds=thresholds, majority=majority)  # masked per task


CONSENSUS = MethodSpec(
    "consensus",
    "keep the entries of tau_MTL active in >= min_agreement TALL masks",
    {
        "tall_lambda": (0.4, number_option("tall_lambda", 0.0, low_open=True)),
        "min_agreement": (2, integer_option("min_agreement", 0)),
        **ties_base_options(),  # a TIES base takes TIES' own defaults (aggregate mean; before issue 12: sum)
    },
    merge=_merge_consensus,
    ties_base=True,
)
TALL_MASK = MethodSpec(
    "tall_mask",
    "TALL masks: task t uses theta_0 + alpha * m_t * tau_MTL (one encoder per task: evaluation only)",
    {"tall_lambda": (0.4, number_option("tall_lambda", 0.0, low_open=True)), **ties_base_options()},
    merge=_merge_tall_mask,
    ties_base=True,
)

__all__ = ["CONSENSUS", "TALL_MASK", "consensus", "tall_mask", "tall_masks"]

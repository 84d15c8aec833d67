"""DARE (Yu et al. 2024): drop entries at random at rate 1 - density and rescale, then sum (PEFT `dare_linear`) or
elect signs and merge disjointly as TIES does (`dare_ties`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from .base import REQUIRED, MethodSpec, boolean_option, choice_option, density_option, integer_option
from .common import LazyMap, TaskVectors, Weight, check_density
from .task_arithmetic import task_arithmetic
from .ties import disjoint_merge, elect_sign


def dare_seed(seed: int, task_index: int, key: str) -> int:
    """A generator seed for one (task, tensor): independent of the order tensors are visited, so streaming and
    in-memory merges drop the same entries."""
    digest = hashlib.sha256(f"{seed}:{task_index}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def dare_mask(shape: torch.Size | tuple[int, ...], density: float, seed: int) -> torch.Tensor:
    """Keep each entry with probability `density` (Bernoulli), from a dedicated CPU generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator, dtype=torch.float32) < density


def dare_drop(tensor: torch.Tensor, density: float, seed: int, rescale: bool = True) -> torch.Tensor:
    """DARE (Yu et al. 2024) "drop and rescale": drop entries at rate 1 - density, divide the rest by density."""
    if density >= 1:
        return tensor
    dropped = tensor * dare_mask(tensor.shape, density, seed).to(tensor.device)
    return dropped / density if rescale else dropped


def dare(
    task_vectors: TaskVectors,
    weights: Sequence[Weight] | None = None,
    *,
    density: float,
    seeds: Sequence[int],
    rescale: bool = True,
    sign_election: bool = False,
    aggregate: str = "mean",
    majority: float | None = None,
) -> torch.Tensor:
    """DARE then Task Arithmetic (PEFT `dare_linear`) or, with `sign_election`, TIES' elect + disjoint merge
    (`dare_ties`). `seeds[t]` seeds task t's drop mask (see `dare_seed`)."""
    check_density(density)
    dropped = LazyMap(task_vectors, lambda t, x: dare_drop(x, density, seeds[t], rescale))
    if not sign_election:
        return task_arithmetic(dropped, weights)
    sign = elect_sign(dropped, majority)
    return disjoint_merge(dropped, sign, weights, aggregate)


def _merge(task_vectors, weights, options, *, key, thresholds, majority) -> torch.Tensor:
    seeds = [dare_seed(options["seed"], t, key) for t in range(len(task_vectors))]
    return dare(
        task_vectors,
        weights,
        density=options["density"],
        seeds=seeds,
        rescale=options["rescale"],
        sign_election=options["sign_election"],
        aggregate=options["aggregate"],
    )


SPEC = MethodSpec(
    "dare",
    "random drop at rate 1-density and rescale, then sum (or TIES sign election)",
    {
        "density": (REQUIRED, density_option),
        "seed": (0, integer_option("seed", 0)),
        "rescale": (True, boolean_option("rescale")),
        "sign_election": (False, boolean_option("sign_election")),
        "aggregate": ("mean", choice_option("aggregate", ("mean", "sum"))),
    },
    merge=_merge,
    elects_signs="sign_election",
)

__all__ = ["SPEC", "dare", "dare_drop", "dare_mask", "dare_seed"]

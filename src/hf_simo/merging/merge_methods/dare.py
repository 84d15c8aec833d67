"""DARE (Yu et al. 2024): drop entries at random at rate 1 - density and rescale, then sum (PEFT `dare_linear`) or
elect signs and merge disjointly as TIES does (`dare_ties`).

Reproducible masks (mask definition `MASK_VERSION`): the mask of one tensor of one task is keyed by the seed, the
task's *name* and the tensor's canonical (transformers-5, unprefixed Dinov2) name, never by positions or spellings,
and drawn from numpy's PCG64 seeded through `SeedSequence` with 256 bits of sha256 (torch's CPU generator keeps only
the low 32 bits of a seed). Entries are kept from raw 32-bit words (NEP 19 keeps bit-generator streams stable across
numpy versions; `Generator.random` is not promised stable): entry i is kept iff word_i < ceil(density·2^24)·2^8.
Tasks are accumulated in the order of their names, so any task order gives the same bits.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch

from ...errors import MergeOptionError
from .base import REQUIRED, MethodSpec, boolean_option, choice_option, density_option, integer_option
from .common import TaskVectors, Weight, check_density
from .task_arithmetic import task_arithmetic
from .ties import disjoint_merge, elect_sign


MASK_VERSION = "hf_simo.dare.v2"  # recorded in config.merge: merges made before it used position-keyed masks


def dare_seed(seed: int, task: str, key: str) -> int:
    """256 bits identifying the mask of one (seed, task name, canonical tensor name); any seed >= 0, untruncated."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise MergeOptionError(f"DARE seed must be an integer >= 0, got {seed!r}")
    text = f"{MASK_VERSION}\0{seed}\0{task}\0{key}".encode()
    return int.from_bytes(hashlib.sha256(text).digest(), "little")


def keep_limit(density: float) -> int:
    """32-bit words below this are kept: ceil(density·2^24)·2^8, exact (a float density is a binary fraction)."""
    return math.ceil(Fraction(density) * (1 << 24)) << 8


def dare_mask(shape: torch.Size | tuple[int, ...], density: float, seed: int, start: int = 0) -> torch.Tensor:
    """Keep each entry with probability ceil(density·2^24)/2^24, from PCG64 seeded by `seed` (see `dare_seed`).

    Two words per 64-bit output, low half first; `start` (even) jumps the generator ahead, so entries [start, stop)
    of a mask equal the whole mask's slice (chunked and whole-tensor merges agree)."""
    if start % 2:
        raise ValueError("a DARE mask range must start at an even position")
    count = math.prod(shape)
    bitgen = np.random.PCG64(np.random.SeedSequence(seed))
    if start:
        bitgen.advance(start // 2)
    words = bitgen.random_raw((count + 1) // 2).view(np.uint32)[:count]
    limit = keep_limit(density)
    if limit > np.iinfo(np.uint32).max:  # density 1: every entry kept
        return torch.ones(shape, dtype=torch.bool)
    return torch.from_numpy(words < np.uint32(limit)).reshape(shape)


def dare_drop(tensor: torch.Tensor, density: float, seed: int, rescale: bool = True) -> torch.Tensor:
    """DARE (Yu et al. 2024) "drop and rescale": drop entries at rate 1 - density, divide the rest by density."""
    if density >= 1:
        return tensor
    dropped = tensor * dare_mask(tensor.shape, density, seed).to(tensor.device)
    return dropped / density if rescale else dropped


class _Reordered(Sequence):
    """Task vectors in name order, dropped with their own masks (lazy: one task's tensor at a time)."""

    def __init__(self, task_vectors, order, seeds, density, rescale):
        self.task_vectors, self.order, self.seeds, self.density, self.rescale = (
            task_vectors,
            order,
            seeds,
            density,
            rescale,
        )

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int) -> torch.Tensor:
        t = self.order[index]
        return dare_drop(self.task_vectors[t], self.density, self.seeds[t], self.rescale)


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
    order: Sequence[int] | None = None,
) -> torch.Tensor:
    """DARE then Task Arithmetic (PEFT `dare_linear`) or, with `sign_election`, TIES' elect + disjoint merge
    (`dare_ties`). `seeds[t]` seeds task t's drop mask (see `dare_seed`); tasks are combined in `order`
    (default: as given; the merges pass the order of the task names)."""
    check_density(density)
    order = list(range(len(task_vectors))) if order is None else list(order)
    dropped = _Reordered(task_vectors, order, seeds, density, rescale)
    ordered_weights = None if weights is None else [weights[t] for t in order]
    if not sign_election:
        return task_arithmetic(dropped, ordered_weights)
    sign = elect_sign(dropped, majority)
    return disjoint_merge(dropped, sign, ordered_weights, aggregate)


def _merge(task_vectors, weights, options, *, key, thresholds, majority, tasks=None) -> torch.Tensor:
    tasks = [str(t) for t in range(len(task_vectors))] if tasks is None else list(tasks)
    if len(set(tasks)) != len(tasks):
        raise MergeOptionError(f"DARE keys its masks by task name: the task names {tasks} must be distinct")
    return dare(
        task_vectors,
        weights,
        density=options["density"],
        seeds=[dare_seed(options["seed"], name, key) for name in tasks],
        rescale=options["rescale"],
        sign_election=options["sign_election"],
        aggregate=options["aggregate"],
        order=sorted(range(len(tasks)), key=tasks.__getitem__),
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

__all__ = ["MASK_VERSION", "SPEC", "dare", "dare_drop", "dare_mask", "dare_seed", "keep_limit"]

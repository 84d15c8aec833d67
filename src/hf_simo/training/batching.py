"""Batches of the training loop: evaluation shards (contiguous, disjoint, covering the set), their loaders, the
per-batch random generators that make resume exact, and what a batch or a loader holds."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from ..errors import TrainingError


def shard_bounds(num_samples: int, num_shards: int, index: int) -> tuple[int, int]:
    """[start, end) of contiguous shard `index`: sizes differ by at most one, shards are disjoint and cover all.

    Same split as `datasets.Dataset.shard(contiguous=True)`.
    """
    if not 0 <= index < num_shards:
        raise ValueError(f"shard index {index} out of range for {num_shards} shards")
    div, mod = divmod(num_samples, num_shards)
    start = div * index + min(index, mod)
    return start, start + div + (1 if index < mod else 0)


def shard_dataset(dataset: Dataset, num_shards: int, index: int) -> Dataset:
    """This process's disjoint contiguous shard of an evaluation set (no padding, no duplicated samples)."""
    if num_shards == 1:
        return dataset
    start, end = shard_bounds(len(dataset), num_shards, index)
    return Subset(dataset, range(start, end))


def dataset_of(data: Dataset | DataLoader) -> Dataset:
    return data.dataset if isinstance(data, DataLoader) else data


def collate_of(data: Dataset | DataLoader, collate_fn: Callable | None) -> Callable:
    if collate_fn is not None:
        return collate_fn
    if isinstance(data, DataLoader) and data.collate_fn is not None:
        return data.collate_fn
    return default_collate


def make_eval_loader(
    data: Dataset | DataLoader,
    accelerator: Accelerator,
    batch_size: int,
    collate_fn: Callable | None = None,
    num_workers: int = 0,
) -> DataLoader:
    """A loader over this process's shard of `data` (a dataset, or a loader whose dataset is used)."""
    dataset = dataset_of(data)
    if len(dataset) < accelerator.num_processes:
        raise TrainingError(
            f"the evaluation set has {len(dataset)} samples, fewer than the {accelerator.num_processes} processes; "
            "use a larger evaluation set or fewer processes"
        )
    shard = shard_dataset(dataset, accelerator.num_processes, accelerator.process_index)
    return DataLoader(
        shard,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate_of(data, collate_fn),
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),  # keeps the global RNG (dropout) untouched by iteration
    )


def step_generator(*parts: int) -> torch.Generator:
    """A generator seeded from integers, so a batch's randomness does not depend on what ran before it."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def batch_size_of(batch: Any) -> int:
    if isinstance(batch, Mapping):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                return int(value.shape[0])
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return int(batch[0].shape[0])
    raise TrainingError("cannot infer the batch size: batches must be dicts (or tuples) of tensors")


__all__ = [
    "batch_size_of",
    "collate_of",
    "dataset_of",
    "make_eval_loader",
    "shard_bounds",
    "shard_dataset",
    "step_generator",
]

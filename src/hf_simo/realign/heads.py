"""Head re-alignment (paper 5.0.1): the merged encoder is frozen, its features are computed once, heads retrain.

Features of the small multi-task validation set are cached (in memory, or on disk keyed by the encoder weights
and the data), then every task head is retrained on them — all heads in one pass, each on its own loss, with its
own gradient clipping and its own early stopping on a held-out part. Nothing here runs the encoder after the
cache is built, which is what makes it cheap (see `benchmarks/realign_speed.py`). A cache on disk is memory-mapped:
every batch indexes its rows from the mapped tensors, so the cache is never loaded whole.

Augmentation changes the encoder's input, so it cannot reuse cached features: `augment` requires
`encoder_in_the_loop=True`, which runs the (frozen) encoder on every batch instead — correct, and slower.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from ..losses import task_loss
from ..modeling_simo import SimoModel, freeze_unused_parameters
from ..training.optim import one_cycle_schedule
from ..utils.logging import progress_bar
from .feature_cache import FeatureCache, compute_feature_cache


@dataclass
class HeadRealignmentResult:
    """What head re-alignment did: per-task best held-out loss and epoch, steps and samples used."""

    best_loss: dict[str, float]
    best_epoch: dict[str, int]
    epochs_run: int
    steps: int
    train_samples: int
    heldout_samples: int
    trainable_parameters: int
    history: list[dict[str, float]] = field(default_factory=list)


class _PixelSource:
    """Images kept as pixels; the frozen encoder runs on every batch (for augmentation and speed comparisons)."""

    def __init__(self, model: SimoModel, pixel_values: torch.Tensor, labels: dict[str, torch.Tensor], augment):
        self.model, self.pixel_values, self.labels, self.augment = model, pixel_values, labels, augment

    def __len__(self) -> int:
        return self.pixel_values.shape[0]

    @torch.no_grad()
    def batch(self, index: torch.Tensor, train: bool):
        pixels = self.pixel_values[index].to(self.model.device)
        labels = {k: v[index].to(self.model.device) for k, v in self.labels.items()}
        if train and self.augment is not None:
            pixels, labels = self.augment(pixels, labels)
        was_training = self.model.dinov2.training
        self.model.dinov2.eval()
        encoding = self.model.encode(pixels)
        self.model.dinov2.train(was_training)
        return encoding, labels


class _CachedSource:
    def __init__(self, model: SimoModel, cache: FeatureCache):
        self.model, self.cache = model, cache

    def __len__(self) -> int:
        return len(self.cache)

    def batch(self, index: torch.Tensor, train: bool):
        labels = {k: v[index].to(self.model.device) for k, v in self.cache.labels.items()}
        return self.cache.encoding(index, self.model.device), labels


def realign_heads(
    model: SimoModel,
    data: FeatureCache | Iterable[dict],
    *,
    tasks: list[str] | None = None,
    epochs: int = 50,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    max_grad_norm: float = 25.0,
    warmup_ratio: float = 0.05,
    heldout_fraction: float = 0.2,
    patience: int = 5,
    seed: int = 0,
    encoder_in_the_loop: bool = False,
    augment: Callable | None = None,
) -> HeadRealignmentResult:
    """Retrain every head of `model` on a frozen encoder's features; heads end at their best held-out epoch.

    `data` is a `FeatureCache` (the fast path) or batches `{"pixel_values", "labels"}`, which are cached first unless
    `encoder_in_the_loop=True`. Optimiser as in the paper: AdamW, one-cycle schedule with 5% warm-up, clipping 25 (the defaults).
    """
    tasks = model.task_names if tasks is None else list(tasks)
    model.check_task_names(tasks)
    if augment is not None and not encoder_in_the_loop:
        raise ValueError(
            "augmentation changes the encoder's input, so cached features cannot be reused: pass "
            "encoder_in_the_loop=True (runs the frozen encoder on every batch, slower) or augment=None"
        )
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    if isinstance(data, FeatureCache):
        if encoder_in_the_loop:
            raise ValueError("encoder_in_the_loop needs pixel batches, not a FeatureCache")
        source = _CachedSource(model, data)
    elif encoder_in_the_loop:
        batches = list(data)
        if not batches:
            raise ValueError("no batches to re-align the heads on: the re-alignment data is empty")
        pixels = torch.cat([b["pixel_values"] for b in batches])
        labels = {t: torch.cat([b["labels"][t] for b in batches]) for t in batches[0]["labels"]}
        source = _PixelSource(model, pixels, labels, augment)
    else:
        source = _CachedSource(model, compute_feature_cache(model, data))
    available = source.cache.labels if isinstance(source, _CachedSource) else source.labels
    missing = [t for t in tasks if t not in available]
    if missing:
        raise KeyError(f"the re-alignment data has no labels for task(s) {missing}; it has {sorted(available)}")

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(source), generator=generator)
    n_heldout = int(round(len(source) * heldout_fraction)) if heldout_fraction > 0 else 0
    if heldout_fraction > 0 and n_heldout == 0 and len(source) > 1:
        n_heldout = 1
    heldout, train = order[:n_heldout], order[n_heldout:]
    if len(train) == 0:
        raise ValueError(f"not enough samples ({len(source)}) to train the heads with a held-out part")

    model.dinov2.requires_grad_(False)
    params = {}
    for t in tasks:
        freeze_unused_parameters(model.heads[t].requires_grad_(True))
        params[t] = [p for p in model.heads[t].parameters() if p.requires_grad]
    all_params = [p for t in tasks for p in params[t]]
    optimizer = torch.optim.AdamW(all_params, lr=learning_rate, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    scheduler = one_cycle_schedule(optimizer, learning_rate, steps_per_epoch * epochs, warmup_ratio)
    specs = {t: model.config.get_task(t) for t in tasks}

    def evaluate() -> dict[str, float]:
        model.heads.eval()
        totals = dict.fromkeys(tasks, 0.0)
        with torch.no_grad():
            for start in range(0, len(heldout), batch_size):
                index = heldout[start : start + batch_size]
                encoding, labels = source.batch(index, train=False)
                predictions = model.decode(encoding, tasks)
                for t in tasks:
                    totals[t] += task_loss(specs[t], predictions[t], labels[t]).item() * len(index)
        return {t: totals[t] / max(1, len(heldout)) for t in tasks}

    best_loss = evaluate() if n_heldout else dict.fromkeys(tasks, math.inf)
    best_state = {t: copy.deepcopy(model.heads[t].state_dict()) for t in tasks}
    best_epoch = dict.fromkeys(tasks, 0)
    history, steps, stale, epoch = [], 0, 0, 0
    for epoch in progress_bar(range(1, epochs + 1), desc="Head re-alignment"):
        model.heads.train()
        permutation = train[torch.randperm(len(train), generator=generator)]
        running = dict.fromkeys(tasks, 0.0)
        for start in range(0, len(permutation), batch_size):
            index = permutation[start : start + batch_size]
            encoding, labels = source.batch(index, train=True)
            predictions = model.decode(encoding, tasks)
            losses = {t: task_loss(specs[t], predictions[t], labels[t]) for t in tasks}
            optimizer.zero_grad(set_to_none=True)
            torch.stack(list(losses.values())).sum().backward()  # heads share nothing: one pass, T problems
            for t in tasks:
                torch.nn.utils.clip_grad_norm_(params[t], max_grad_norm)
            optimizer.step()
            scheduler.step()
            steps += 1
            for t in tasks:
                running[t] += losses[t].item() * len(index)
        record = {f"train/{t}": running[t] / len(train) for t in tasks}
        improved = False
        if n_heldout:
            heldout_loss = evaluate()
            record |= {f"heldout/{t}": v for t, v in heldout_loss.items()}
            for t in tasks:
                if heldout_loss[t] < best_loss[t]:
                    best_loss[t], best_epoch[t], improved = heldout_loss[t], epoch, True
                    best_state[t] = copy.deepcopy(model.heads[t].state_dict())
        else:
            best_state = {t: copy.deepcopy(model.heads[t].state_dict()) for t in tasks}
            best_epoch = dict.fromkeys(tasks, epoch)
            improved = True
        history.append({"epoch": epoch, **record})
        stale = 0 if improved else stale + 1
        if n_heldout and stale >= patience:
            break
    for t in tasks:
        model.heads[t].load_state_dict(best_state[t])
    model.eval()
    return HeadRealignmentResult(
        best_loss=best_loss,
        best_epoch=best_epoch,
        epochs_run=epoch,
        steps=steps,
        train_samples=len(train),
        heldout_samples=n_heldout,
        trainable_parameters=sum(p.numel() for p in all_params),
        history=history,
    )


__all__ = ["HeadRealignmentResult", "realign_heads"]

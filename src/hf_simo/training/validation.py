"""The trainer's validation pass: the validation loss (for early stopping) and, given `metrics`, the task metrics,
on this process's shard, reduced exactly over processes. The evaluation of finished models is
`hf_simo.evaluation.evaluate`; this pass exists apart because it needs the training `loss_fn`."""

from __future__ import annotations

from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device
from torch import nn
from torch.utils.data import DataLoader

from .batching import batch_size_of, step_generator
from .config import BatchTransform, LossFn


@torch.no_grad()
def evaluate(
    accelerator: Accelerator,
    model: nn.Module,
    loader: DataLoader,
    loss_fn: LossFn,
    metrics: Any | None = None,
    transform: BatchTransform | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Validation loss (mean over samples), averaged logs and, with `metrics`, `metrics.compute(accelerator)`.

    `loader` must hold this process's disjoint shard (see `make_eval_loader`). Sums are reduced across processes,
    so the result does not depend on the number of processes. Runs the unwrapped model: shards may differ in size
    and no collective may happen inside the forward.
    """
    module = accelerator.unwrap_model(model)
    was_training = module.training
    module.eval()
    device = accelerator.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    log_sums: dict[str, torch.Tensor] = {}
    log_counts: dict[str, torch.Tensor] = {}
    if metrics is not None:
        metrics.reset()
    try:
        for index, batch in enumerate(loader):
            batch = send_to_device(batch, device)
            if transform is not None:
                batch = transform(batch, step_generator(seed, 7919, index, accelerator.process_index))
            size = batch_size_of(batch)
            with accelerator.autocast():
                out = loss_fn(module, batch)
            per_sample = out.sample_losses if out.sample_losses is not None else out.loss.detach().expand(size)
            loss_sum += per_sample.double().sum()
            count += per_sample.numel()
            for key, value in out.logs.items():
                value = value.detach().double()
                values = value if value.ndim else value.expand(size)
                log_sums[key] = log_sums.get(key, torch.zeros_like(loss_sum)) + values.sum()
                log_counts[key] = log_counts.get(key, torch.zeros_like(loss_sum)) + values.numel()
            if metrics is not None:
                metrics.update(out.predictions, out.labels)
    finally:
        module.train(was_training)
    if accelerator.num_processes > 1:
        keys = sorted(log_sums)
        packed = torch.stack([loss_sum, count] + [log_sums[k] for k in keys] + [log_counts[k] for k in keys])
        packed = accelerator.reduce(packed, reduction="sum")
        loss_sum, count = packed[0], packed[1]
        log_sums = {k: packed[2 + i] for i, k in enumerate(keys)}
        log_counts = {k: packed[2 + len(keys) + i] for i, k in enumerate(keys)}
    results: dict[str, Any] = {"loss": (loss_sum / count.clamp(min=1)).item()}
    for key in sorted(log_sums):
        results[key] = (log_sums[key] / log_counts[key].clamp(min=1)).item()
    if metrics is not None:
        results["metrics"] = metrics.compute(accelerator)
    return results


__all__ = ["evaluate"]

"""The one evaluation loop: metrics of a `SimoModel` on in-memory batches or on a dataset split.

- `simo_batches(dataset, tasks, batch_size)`: a `datasets` split in the shared schema -> batches
  ``{"pixel_values": normalized, "labels": {task: tensor}}`` (contiguous slices, held in memory: validation and test
  splits, not training sets);
- `evaluate(model, batches, tasks)`: task -> {metric: value}, with `hf_simo.metrics.MultiTaskMetrics`; every batch is
  checked (its keys, the labels of every task asked for, their shape and values against the task's spec) and moved
  to the model's device and dtype; with an `accelerator`, each process passes its own batches and the metric states
  are reduced exactly across processes;
- `evaluate_dataset(model, dataset, ...)`: `simo_batches` + `evaluate`, each process on its contiguous shard
  (`process_shard`, which the α search and the feature cache of re-alignment share out by too);
- `primary_values`, `baseline_values`: the primary metric of each task (what normalized performance compares).

The training loop's validation pass (`hf_simo.training.evaluate`) is a separate pass on purpose: it computes the
validation *loss* for early stopping on flat training rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from .errors import DataError, UnknownTaskError
from .metrics import MultiTaskMetrics
from .modeling_simo import SimoModel, check_task_labels
from .processing import normalize_images


def simo_batches(dataset, tasks: Sequence[str], batch_size: int = 64, limit: int | None = None) -> list[dict]:
    """A `datasets` split in the shared schema -> batches `{"pixel_values": normalized, "labels": {task: ...}}`.

    Contiguous slices (much faster than per-item access with Arrow-backed datasets); held in memory, so use it for
    the small validation/test splits, not for training sets.
    """
    missing = [t for t in tasks if t not in dataset.column_names]
    if missing:
        raise UnknownTaskError(
            f"the dataset has no labels for task(s) {missing}; its columns are {dataset.column_names}"
        )
    dataset = dataset.with_format("torch")
    size = len(dataset) if limit is None else min(limit, len(dataset))
    if size == 0:
        raise DataError("the dataset split is empty")
    batches = []
    for start in range(0, size, batch_size):
        rows = dataset[start : min(start + batch_size, size)]
        batches.append(
            {"pixel_values": normalize_images(rows["image"].float()), "labels": {t: rows[t] for t in tasks}}
        )
    return batches


def check_batch(batch: Any, index: int, tasks: Sequence[str]) -> None:
    """A batch is ``{"pixel_values": tensor, "labels": {task: tensor}}`` with labels for every task in `tasks`."""
    if not isinstance(batch, Mapping) or "pixel_values" not in batch or "labels" not in batch:
        got = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
        raise TypeError(f"batch {index} must be a dict with 'pixel_values' and 'labels', got {got}")
    labels = batch["labels"]
    if not isinstance(labels, Mapping):
        raise TypeError(f"batch {index}: 'labels' must be a dict of task -> tensor, got {type(labels).__name__}")
    missing = [task for task in tasks if task not in labels]
    if missing:
        raise UnknownTaskError(
            f"the evaluation data has no labels for task(s) {missing} (batch {index} has labels for "
            f"{sorted(labels)}); pass tasks=[...] to evaluate only the tasks the data has"
        )


@torch.no_grad()
def evaluate(
    model: SimoModel,
    batches: Iterable[Mapping[str, Any]],
    tasks: Sequence[str] | None = None,
    *,
    max_batches: int | None = None,
    accelerator=None,
) -> dict[str, dict[str, float]]:
    """Metrics of `model` on `batches` for `tasks` (default: all of the model's): task -> {metric: value}.

    At most `max_batches` batches are read. With an `accelerator` (several processes), each process passes its own
    batches and the metric states are summed (per-pixel angles gathered) across processes before the metrics are
    computed, so the result equals one process evaluating everything. The model's train/eval mode is restored
    afterwards.
    """
    tasks = list(model.task_names if tasks is None else tasks)
    unknown = [t for t in tasks if t not in model.task_names]
    if unknown:
        raise UnknownTaskError(f"the model has no task(s) {unknown}; its tasks are {model.task_names}")
    specs = {t: model.config.get_task(t) for t in tasks}
    device, dtype = model.device, model.dtype
    metrics = MultiTaskMetrics(specs, device=None if accelerator is None else accelerator.device)
    was_training = model.training
    model.eval()
    count = 0
    try:
        for index, batch in enumerate(batches):
            if max_batches is not None and index >= max_batches:
                break
            check_batch(batch, index, tasks)
            pixel_values = batch["pixel_values"].to(device=device, dtype=dtype)
            labels = {t: batch["labels"][t].to(device) for t in tasks}
            for t in tasks:  # shape, dtype and values against the spec (cheap; no loss is computed)
                check_task_labels(t, specs[t], labels[t], pixel_values)
            predictions = model(pixel_values, tasks=tasks).predictions
            metrics.update(predictions, labels)
            count += 1
    finally:
        model.train(was_training)
    if count == 0 and (accelerator is None or accelerator.num_processes == 1):
        raise DataError("the evaluation data is empty (no batch)")
    return metrics.compute(accelerator)


def process_shard(dataset, accelerator=None):
    """This process's contiguous shard of `dataset` (shards in process order, sizes differing by at most one): what
    each process evaluates, searches α on, or encodes for the feature cache; the whole set without an accelerator
    of several processes."""
    if accelerator is None or accelerator.num_processes == 1:
        return dataset
    from .training import shard_bounds

    if len(dataset) < accelerator.num_processes:
        raise DataError(
            f"the evaluation set has {len(dataset)} samples, fewer than the {accelerator.num_processes} "
            "processes; use a larger evaluation set or fewer processes"
        )
    start, end = shard_bounds(len(dataset), accelerator.num_processes, accelerator.process_index)
    return dataset.select(range(start, end))


def evaluate_dataset(
    model: SimoModel, dataset, *, tasks: Sequence[str] | None = None, batch_size: int = 64, accelerator=None
) -> dict[str, dict[str, float]]:
    """Metrics of `model` on a dataset split. With an `accelerator` of several processes, each process evaluates its
    own contiguous shard (`process_shard`) and the states are reduced exactly; without, one process goes through
    everything."""
    tasks = list(model.task_names if tasks is None else tasks)
    if accelerator is not None and accelerator.num_processes > 1:
        shard = process_shard(dataset, accelerator)
        return evaluate(model, simo_batches(shard, tasks, batch_size), tasks, accelerator=accelerator)
    return evaluate(model, simo_batches(dataset, tasks, batch_size), tasks)


def primary_values(model_or_specs, results: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """task -> the value of its primary metric in `results` (specs from a model or a task -> spec mapping)."""
    specs = model_or_specs.config.task_specs if isinstance(model_or_specs, SimoModel) else model_or_specs
    return MultiTaskMetrics({t: specs[t] for t in results}).primary(results)


def baseline_values(models: Mapping[str, SimoModel], batches: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """task -> the primary value of its single-task model on `batches` (the normalization of eq. 1)."""
    return {t: primary_values(model, evaluate(model, batches, [t]))[t] for t, model in models.items()}


__all__ = [
    "baseline_values",
    "check_batch",
    "evaluate",
    "evaluate_dataset",
    "primary_values",
    "process_shard",
    "simo_batches",
]

"""Datasets, task checks, batched augmentation and the `SimoModel` loss function the recipes train with.

Datasets stay `with_format("torch")` Arrow tables (no per-sample Python transform); batches are collated by
`default_collate` and augmented *after* they reach the device, one batched `random_scale_crop` per batch, with a
generator the training loop seeds per batch so resuming reproduces the same crops.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..configuration_simo import TaskSpec
from ..losses import task_loss
from ..processing import normalize_images
from .loop import BatchTransform, LossFn, StepOutput


BENCHMARK_PRESETS = ("nyuv2", "taskonomy")
REAL_DATASETS = ("nyuv2_real", "cityscapes", "taskonomy_real")
PRETRAINING_DATASET = "pretraining"  # images only: the encoder pre-training set of the embedded benchmark


class UnknownTaskError(ValueError):
    """A task was asked for that the dataset does not have."""


def load_training_data(
    dataset: str = "nyuv2",
    *,
    dataset_path: str | os.PathLike | None = None,
    image_size: int = 64,
    train_samples: int = 2000,
    validation_samples: int = 200,
    test_samples: int | None = None,
    data_seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
):
    """A `DatasetDict` with at least ``train`` and ``validation``, torch-formatted, in hf_simo's shared schema.

    dataset: ``"nyuv2"`` / ``"taskonomy"`` (the embedded benchmark, built and cached on first use), ``"nyuv2_real"``,
        ``"cityscapes"``, ``"taskonomy_real"`` (the paper's datasets, read from ``dataset_path``), a folder
        written by `DatasetDict.save_to_disk` from one of hf_simo's loaders (it carries its task specs), or
        ``"pretraining"`` (images only: `hf_simo.data.load_pretraining_images`).
    """
    from datasets import DatasetDict, load_from_disk

    from ..data import DatasetNotFoundError, load_benchmark, load_cityscapes, load_nyuv2, load_taskonomy

    if dataset == PRETRAINING_DATASET:
        from ..data import load_pretraining_images

        sizes = {"train": int(train_samples), "validation": int(validation_samples)}
        return load_pretraining_images(image_size, sizes=sizes, seed=data_seed, cache_dir=cache_dir)
    if dataset in BENCHMARK_PRESETS:
        sizes = {"train": int(train_samples), "validation": int(validation_samples)}
        if test_samples:
            sizes["test"] = int(test_samples)
        return load_benchmark(dataset, image_size=image_size, sizes=sizes, seed=data_seed, cache_dir=cache_dir)
    if dataset in REAL_DATASETS:
        if dataset_path is None:
            raise DatasetNotFoundError(f"dataset {dataset!r} needs --dataset_path <folder with the data>")
        if dataset == "nyuv2_real":
            layout = "npy" if any(Path(dataset_path).glob("train")) else "parquet"
            return load_nyuv2(dataset_path, layout=layout, split_seed=data_seed)
        if dataset == "cityscapes":
            return load_cityscapes(dataset_path, split_seed=data_seed)
        return load_taskonomy(dataset_path, split_seed=data_seed)
    folder = Path(dataset).expanduser()
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"dataset {dataset!r} is neither a benchmark preset {list(BENCHMARK_PRESETS)}, a real dataset "
            f"{list(REAL_DATASETS)} (with --dataset_path), nor an existing folder saved with DatasetDict.save_to_disk"
        )
    if not (folder / "dataset_dict.json").is_file():
        raise DatasetNotFoundError(
            f"{folder} is not a saved DatasetDict (no dataset_dict.json); save one with DatasetDict.save_to_disk"
        )
    data = load_from_disk(str(folder))
    if not isinstance(data, DatasetDict):
        raise DatasetNotFoundError(f"{folder} holds a single Dataset; hf_simo needs a DatasetDict with splits")
    return data.with_format("torch")


def load_data(data, *, test_samples: int | None = None):
    """`load_training_data` with the fields of a `DataArguments` (the one call every recipe and verb makes)."""
    return load_training_data(
        data.dataset,
        dataset_path=data.dataset_path,
        image_size=data.image_size,
        train_samples=data.train_samples,
        validation_samples=data.validation_samples,
        test_samples=test_samples,
        data_seed=data.data_seed,
        cache_dir=data.dataset_cache_dir,
    )


def check_splits(data, splits: Sequence[str] = ("train", "validation")) -> None:
    missing = [s for s in splits if s not in data]
    if missing:
        raise ValueError(f"the dataset has splits {list(data)}; training needs {list(splits)} (missing {missing})")


def select_tasks(specs: Mapping[str, Mapping[str, Any]], tasks: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """The specs of `tasks` (default: all of `specs`, a dataset's task specs), or a clear error naming the tasks
    the dataset has."""
    specs = dict(specs)
    if tasks is None:
        return specs
    if isinstance(tasks, str):
        tasks = [tasks]
    unknown = [t for t in tasks if t not in specs]
    if unknown:
        raise UnknownTaskError(f"task(s) {unknown} not in the dataset; it has tasks {list(specs)}")
    if not tasks:
        raise UnknownTaskError(f"no task selected; the dataset has tasks {list(specs)}")
    return {t: specs[t] for t in tasks}


def task_columns(data, tasks: Sequence[str]):
    """The dataset restricted to ``image`` and the trained tasks (single-task training sees only its labels)."""
    return data.select_columns(["image", *tasks])


def make_augmentation(
    task_specs: Mapping[str, Mapping[str, Any]], scales: Sequence[float] | None = None
) -> BatchTransform:
    """The paper's random scale-crop, batched, on the device; labels move with the image."""
    from ..data import random_scale_crop

    kwargs = {} if scales is None else {"scales": tuple(scales)}

    def transform(batch: dict[str, Any], generator: torch.Generator) -> dict[str, Any]:
        return random_scale_crop(batch, task_specs, generator=generator, **kwargs)

    return transform


def _resolved(name: str, spec: TaskSpec | Mapping[str, Any]) -> TaskSpec:
    """A spec with its defaults (loss, ignore index, invalid value) filled in, as the model resolves it."""
    spec = TaskSpec.from_dict(name, spec)
    return spec.resolved(name, max(spec.layers) if spec.layers else 12)


def make_simo_loss_fn(task_specs: Mapping[str, TaskSpec | Mapping[str, Any]]) -> LossFn:
    """`SimoModel` loss on a batch in the shared schema: the unweighted mean of the task losses.

    `task_specs`: the model's (``model.config.tasks``) or a dataset's specs. In evaluation it also returns
    per-sample losses (the mean over tasks of each sample's task loss), so the
    validation loss is the same however the set is batched or sharded, plus predictions and labels for metrics.
    """
    specs = {name: _resolved(name, spec) for name, spec in task_specs.items()}

    def loss_fn(model: torch.nn.Module, batch: dict[str, Any]) -> StepOutput:
        labels = {name: batch[name] for name in specs if name in batch}
        if not labels:
            raise KeyError(f"the batch has none of the trained tasks {list(specs)}; its keys are {list(batch)}")
        pixel_values = normalize_images(batch["image"])
        out = model(pixel_values=pixel_values, labels=labels, tasks=list(labels))
        logs = {f"loss_{name}": value.detach() for name, value in out.task_losses.items()}
        if model.training:
            return StepOutput(loss=out.loss, logs=logs)
        per_task = []
        for name, target in labels.items():
            resolved = specs[name]
            prediction = out.predictions[name]
            target = target.unsqueeze(1) if target.ndim == 3 and not resolved.is_classification else target
            per_task.append(
                torch.stack(
                    [task_loss(resolved, prediction[i : i + 1], target[i : i + 1]) for i in range(len(target))]
                )
            )
            logs[f"loss_{name}"] = per_task[-1].detach()
        sample_losses = torch.stack(per_task).mean(dim=0)
        return StepOutput(
            loss=out.loss, sample_losses=sample_losses, logs=logs, predictions=out.predictions, labels=labels
        )

    return loss_fn


__all__ = [
    "BENCHMARK_PRESETS",
    "PRETRAINING_DATASET",
    "REAL_DATASETS",
    "UnknownTaskError",
    "check_splits",
    "load_data",
    "load_training_data",
    "make_augmentation",
    "make_simo_loss_fn",
    "select_tasks",
    "task_columns",
]

"""Loading a dataset by name for the recipes and verbs, and the checks every job makes on it.

- `load_training_data(dataset, ...)` / `load_data(DataArguments)`: a `DatasetDict` in the shared schema, torch
  formatted: the embedded benchmark (a preset name, built and cached on first use), one of the paper's datasets (read
  from ``--dataset_path``), or a folder saved with `DatasetDict.save_to_disk` by one of hf_simo's loaders;
- `check_splits`, `select_tasks`, `task_columns`: the splits and tasks a job needs, with errors naming what the
  dataset has.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import DataError, DatasetNotFoundError, UnknownTaskError
from .specs import BENCHMARK_PRESETS, PRETRAINING_DATASET, REAL_DATASETS


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
        ``"cityscapes"``, ``"taskonomy_real"`` (the paper's datasets, read from ``dataset_path``), or a folder
        written by `DatasetDict.save_to_disk` from one of hf_simo's loaders (it carries its task specs), or
        ``"pretraining"`` (images only: `hf_simo.data.load_pretraining_images`).
    train_samples: 0 builds no training split of the embedded benchmark (its samples do not depend on the sizes,
        so the validation split is the same), for jobs that only evaluate.
    """
    from datasets import DatasetDict, load_from_disk

    from .cityscapes import load_cityscapes
    from .nyuv2 import load_nyuv2
    from .synthetic import load_benchmark
    from .taskonomy import load_taskonomy

    if dataset == PRETRAINING_DATASET:
        from .synthetic import load_pretraining_images

        sizes = {"train": int(train_samples), "validation": int(validation_samples)}
        return load_pretraining_images(image_size, sizes=sizes, seed=data_seed, cache_dir=cache_dir)
    if dataset in BENCHMARK_PRESETS:
        sizes = {"train": int(train_samples)} if train_samples else {}
        sizes["validation"] = int(validation_samples)
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


def load_data(data, *, test_samples: int | None = None, train: bool = True):
    """`load_training_data` with the fields of a `DataArguments` (the one call every recipe and verb makes);
    `train=False` builds no training split of the embedded benchmark (jobs that only evaluate)."""
    return load_training_data(
        data.dataset,
        dataset_path=data.dataset_path,
        image_size=data.image_size,
        train_samples=data.train_samples if train else 0,
        validation_samples=data.validation_samples,
        test_samples=test_samples,
        data_seed=data.data_seed,
        cache_dir=data.dataset_cache_dir,
    )


def check_splits(data, splits: Sequence[str] = ("train", "validation")) -> None:
    missing = [s for s in splits if s not in data]
    if missing:
        raise DataError(f"the dataset has splits {list(data)}; training needs {list(splits)} (missing {missing})")


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


__all__ = ["check_splits", "load_data", "load_training_data", "select_tasks", "task_columns"]

"""NYUv2 (13-class segmentation, depth, surface normals) in the shared schema, with the paper's splits.

Two on-disk layouts hold the same arrays (288x384, as preprocessed by MTAN/LibMTL):

- ``layout="npy"``: ``<root>/{train,val}/{image,label,depth,normal}/<N>.npy``; images (H, W, 3) floats in [0, 1],
  labels (H, W) with -1 = ignore, depth (H, W, 1) with 0 = invalid, normals (H, W, 3) in [-1, 1].
- ``layout="parquet"``: the Hub dataset ``tanganke/nyuv2`` (columns ``image`` f32[3, H, W], ``segmentation`` i64,
  ``depth`` f32[1, H, W], ``normal`` f32[3, H, W]; splits ``train`` 795 / ``val`` 654), from a local folder or
  downloaded with `huggingface_hub.snapshot_download(repo_id, repo_type="dataset")`.

Splits follow the paper (appendix A): the 795 training images, and the 654 official test images carved
deterministically (seeded permutation) into 400 for validation and 254 for test. Ignore labels become 255. The
paper trains at 280x378 (a multiple of the 14-pixel DINOv2 patch): the loader keeps the stored 288x384 and leaves
cropping to the model's processing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._common import (
    DataFormatError,
    DatasetNotFoundError,
    example_features,
    segmentation_labels,
    unit_normals,
)
from ._npytree import carve, image_shape, list_samples, split_datasets
from .specs import get_task_specs, make_description


NYUV2_REPO_ID = "tanganke/nyuv2"
NYUV2_TASKS = ("segmentation", "depth", "normals")
_NPY_FOLDERS = {"segmentation": "label", "depth": "depth", "normals": "normal"}
_PARQUET_COLUMNS = {"segmentation": "segmentation", "depth": "depth", "normals": "normal"}
# Paper: 654 official test images -> 400 validation + 254 test.
_VAL_FRACTION = 400 / 654
_NPY_LAYOUT = "<root>/{train,val}/{image,label,depth,normal}/<N>.npy (MTAN/LibMTL preprocessing)"


def _specs(tasks: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    all_specs = get_task_specs("nyuv2_real")
    tasks = list(NYUV2_TASKS if tasks is None else tasks)
    unknown = [t for t in tasks if t not in all_specs]
    if unknown or not tasks:
        raise ValueError(f"unknown NYUv2 task(s) {unknown}; choose from {list(NYUV2_TASKS)}")
    return {t: all_specs[t] for t in tasks}


def _paper_split(n_val: int, split_seed: int) -> tuple[list[int], list[int]]:
    return carve(n_val, int(round(n_val * _VAL_FRACTION)), split_seed)


def load_nyuv2(
    root: str | os.PathLike | None = None,
    layout: str = "npy",
    *,
    tasks: Sequence[str] | None = None,
    split_seed: int = 0,
):
    """NYUv2 as a torch-formatted `datasets.DatasetDict` with ``train`` (795), ``validation`` (400), ``test`` (254).

    Args:
        root: the dataset folder. For ``layout="parquet"`` it may also be a Hub dataset id (default
            ``"tanganke/nyuv2"`` when root is None), fetched with ``snapshot_download(..., repo_type="dataset")``.
        layout: ``"npy"`` (MTAN/LibMTL tree) or ``"parquet"`` (``tanganke/nyuv2``).
        tasks: subset of ``("segmentation", "depth", "normals")``; default all three.
        split_seed: seed of the permutation that carves validation/test out of the official test images.
    """
    specs = _specs(tasks)
    if layout == "npy":
        if root is None:
            raise ValueError(f"layout='npy' needs root=<folder>; expected {_NPY_LAYOUT}")
        dd = _load_npy(Path(root).expanduser(), specs, split_seed)
    elif layout == "parquet":
        dd = _load_parquet(_resolve_parquet_root(root), specs, split_seed)
    else:
        raise ValueError(f"layout must be 'npy' or 'parquet', got {layout!r}")
    return dd.with_format("torch")


def _load_npy(root: Path, specs: dict[str, dict[str, Any]], split_seed: int):
    if not root.is_dir():
        raise DatasetNotFoundError(f"NYUv2 root {root} does not exist; expected {_NPY_LAYOUT}")
    folders = {"image": "image", **{t: _NPY_FOLDERS[t] for t in specs}}
    train = list_samples(root, "train", folders, "NYUv2", _NPY_LAYOUT)
    val = list_samples(root, "val", folders, "NYUv2", _NPY_LAYOUT)
    height, width = image_shape(train[0]["image"])
    features = example_features(height, width, specs)
    description = make_description("nyuv2", specs, layout="npy", root=str(root), split_seed=split_seed)
    val_idx, test_idx = _paper_split(len(val), split_seed)
    parts = {"train": train, "validation": [val[i] for i in val_idx], "test": [val[i] for i in test_idx]}
    return split_datasets(parts, specs, None, features, description)


NYUV2_HUB_PATTERNS = ["*.parquet", "*.json", "*.md"]  # the files of the tanganke/nyuv2 dataset repo


def _resolve_parquet_root(root: str | os.PathLike | None) -> Path:
    """A local folder, or a Hub dataset id downloaded (or found in the local Hub cache) by snapshot_download."""
    root = NYUV2_REPO_ID if root is None else root
    path = Path(root).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DatasetNotFoundError(
                f"NYUv2 parquet root {path} is a file; pass the folder holding the parquet files"
            )
        return path
    if isinstance(root, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", root):
        from ..hub import resolve_repo

        return resolve_repo(root, repo_type="dataset", allow_patterns=NYUV2_HUB_PATTERNS).path
    raise DatasetNotFoundError(
        f"NYUv2 parquet root {root} is neither an existing folder nor a Hub dataset id like {NYUV2_REPO_ID!r}"
    )


def _parquet_convert(
    batch: dict[str, Any], indices: list[int], specs: dict[str, dict[str, Any]], where: str, hw: tuple[int, int]
):
    """Batched map: schema columns from tanganke/nyuv2 columns (ignore -1 -> 255, unit normals), checked per row."""
    for column, values in batch.items():
        for row, value in zip(indices, values):
            if tuple(np.shape(value)[-2:]) != hw:
                raise DataFormatError(
                    f"{where}, row {row}: column {column!r} has shape {tuple(np.shape(value))} but images are "
                    f"{hw[0]}x{hw[1]}; every label must have the image's height and width"
                )
    out: dict[str, Any] = {"image": np.asarray(batch["image"], dtype=np.float32)}
    for name, spec in specs.items():
        values = batch[_PARQUET_COLUMNS[name]]
        if spec["kind"] == "semantic_segmentation":
            n = int(spec["num_outputs"])
            out[name] = np.stack(
                [segmentation_labels(np.asarray(v), n, f"{where}, row {row}") for row, v in zip(indices, values)]
            )
        else:
            array = np.asarray(values, dtype=np.float32)
            array = np.where(np.isfinite(array), array, np.float32(0.0))
            if spec["kind"] == "depth":
                array = np.where(array > 0, array, np.float32(0.0))
            elif spec["kind"] == "surface_normals":
                array = np.stack([unit_normals(a) for a in array])
            out[name] = array
    return out


def _load_parquet(folder: Path, specs: dict[str, dict[str, Any]], split_seed: int):
    from datasets import DatasetDict, load_dataset

    if not any(folder.rglob("*.parquet")):
        raise DatasetNotFoundError(
            f"NYUv2: no .parquet files under {folder}; expected the tanganke/nyuv2 layout (data/train-*.parquet, "
            "data/val-*.parquet)"
        )
    raw = load_dataset(str(folder))
    split_names = {"train": "train", "val": "val" if "val" in raw else "validation"}
    for name in split_names.values():
        if name not in raw:
            raise DataFormatError(
                f"NYUv2 parquet folder {folder} has splits {sorted(raw)}; expected 'train' and 'val' (or 'validation')"
            )
    needed = ["image"] + [_PARQUET_COLUMNS[t] for t in specs]
    for split in split_names.values():
        missing = [c for c in needed if c not in raw[split].column_names]
        if missing:
            raise DataFormatError(
                f"NYUv2 parquet folder {folder}, split {split!r}: missing column(s) {missing}; found "
                f"{raw[split].column_names}"
            )
    first = np.asarray(raw["train"].with_format("numpy")[0]["image"])
    if first.ndim != 3 or first.shape[0] != 3:
        raise DataFormatError(f"NYUv2 parquet folder {folder}: image has shape {first.shape}; expected (3, H, W)")
    height, width = first.shape[1:]
    features = example_features(height, width, specs)
    description = make_description("nyuv2", specs, layout="parquet", root=str(folder), split_seed=split_seed)

    def convert(split: str):
        ds = raw[split].select_columns(needed).with_format("numpy")
        where = f"NYUv2 parquet {folder}, split {split!r}"
        out = ds.map(
            _parquet_convert,
            batched=True,
            batch_size=16,
            with_indices=True,
            fn_kwargs={"specs": specs, "where": where, "hw": (height, width)},
            remove_columns=needed,
            features=features,
            desc=f"NYUv2 {split}",
        )
        out.info.description = description
        return out

    train, val = convert(split_names["train"]), convert(split_names["val"])
    val_idx, test_idx = _paper_split(len(val), split_seed)
    dd = DatasetDict({"train": train, "validation": val.select(val_idx), "test": val.select(test_idx)})
    for ds in dd.values():
        ds.info.description = description
    return dd

"""Helpers shared by the benchmark and the real-dataset loaders: errors, Arrow features, dataset building, caching."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_folder
from ..errors import DataFormatError, DatasetNotFoundError


def hf_home() -> Path:
    """`HF_HOME`, read at call time (tests and users may set it after `huggingface_hub` was imported)."""
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "huggingface"


def default_cache_root() -> Path:
    """Default folder of hf_simo's dataset caches: ``$HF_HOME/hf_simo``."""
    return hf_home() / "hf_simo"


def example_features(height: int, width: int, task_specs: Mapping[str, Mapping[str, Any]]):
    """Arrow features of the shared example schema: float32 (3, H, W) image and one column per task."""
    from datasets import Array2D, Array3D, Features

    columns: dict[str, Any] = {"image": Array3D((3, height, width), "float32")}
    for name, spec in task_specs.items():
        if spec["kind"] == "semantic_segmentation":
            columns[name] = Array2D((height, width), "int64")
        else:
            columns[name] = Array3D((int(spec["num_outputs"]), height, width), "float32")
    return Features(columns)


def _list_array(values: np.ndarray):
    """(N, d1, ..., dk) numpy -> nested Arrow list array, without a per-element Python loop."""
    import pyarrow as pa

    out = pa.array(np.ascontiguousarray(values).reshape(-1))
    for dim in reversed(values.shape[1:]):
        rows = len(out) // dim
        out = pa.ListArray.from_arrays(pa.array(np.arange(0, rows * dim + 1, dim, dtype=np.int32)), out)
    return out


def dataset_from_batches(
    batches: Iterable[Mapping[str, np.ndarray]], features, description: str, fingerprint: str, split: str
):
    """An in-memory `datasets.Dataset` from batched numpy columns (no per-example encoding, no table hashing)."""
    import pyarrow as pa
    from datasets import Dataset, DatasetInfo, NamedSplit

    schema = features.arrow_schema
    tables = []
    for batch in batches:
        arrays = []
        for name in features:
            storage = _list_array(np.asarray(batch[name]))
            field_type = schema.field(name).type
            arrays.append(pa.ExtensionArray.from_storage(field_type, storage))
        tables.append(pa.Table.from_arrays(arrays, schema=schema))
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    info = DatasetInfo(description=description, features=features)
    return Dataset(table, info=info, split=NamedSplit(split), fingerprint=fingerprint)


def dataset_from_generator(
    generator: Callable[..., Iterable[dict[str, np.ndarray]]],
    gen_kwargs: dict[str, Any],
    features,
    description: str,
    split: str,
):
    """`Dataset.from_generator` (Arrow written to the datasets cache, memory-mapped), re-raising our own errors.

    `datasets` wraps exceptions raised by the generator in a generic `DatasetGenerationError`; the loaders' errors
    name the bad file and the fix, so the original error is re-raised instead.
    """
    from datasets import Dataset, NamedSplit

    try:
        ds = Dataset.from_generator(
            generator,
            features=features,
            gen_kwargs=gen_kwargs,
            split=NamedSplit(split),
            writer_batch_size=32,  # full-size NYUv2 examples are ~4 MB: do not buffer 1000 of them
        )
    except Exception as err:  # unwrap to our error if it is in the chain
        cause: BaseException | None = err
        while cause is not None:
            if isinstance(cause, (DataFormatError, DatasetNotFoundError)):
                raise cause from None
            cause = cause.__cause__ or cause.__context__
        raise
    ds.info.description = description
    return ds


def save_atomically(dataset_dict, folder: Path) -> None:
    """`save_to_disk` into a temporary sibling folder that becomes `folder` when complete (`hf_simo.atomic
    .atomic_folder`): readers never see a half-written cache, and, a cache's rule, a folder another process
    completed meanwhile is kept (this copy is discarded)."""
    with atomic_folder(folder, overwrite="keep", wait_for_lock=True) as temporary:
        dataset_dict.save_to_disk(str(temporary))


def channels_first(array: np.ndarray, channels: int, path: Path | str, what: str) -> np.ndarray:
    """(H, W, C), (C, H, W) or, for one channel, (H, W) -> (C, H, W); anything else is a clear error."""
    if array.ndim == 2 and channels == 1:
        return array[None]
    if array.ndim == 3:
        if array.shape[0] == channels and array.shape[-1] != channels:
            return array
        if array.shape[-1] == channels:
            return np.moveaxis(array, -1, 0)
        if array.shape[0] == channels:
            return array
    raise DataFormatError(
        f"{path}: {what} has shape {tuple(array.shape)}; expected (H, W, {channels}) or ({channels}, H, W)"
        + (" or (H, W)" if channels == 1 else "")
    )


def check_same_size(shape: tuple[int, int], expected: tuple[int, int], path: Path | str, what: str, ref: str) -> None:
    if tuple(shape) != tuple(expected):
        raise DataFormatError(
            f"{path}: {what} is {shape[0]}x{shape[1]} but the image ({ref}) is {expected[0]}x{expected[1]}; "
            "every label of a sample must have the image's height and width"
        )


def segmentation_labels(
    label: np.ndarray, num_classes: int, path: Path | str, ignore_values: tuple[int, ...] = (-1, 255)
) -> np.ndarray:
    """Integer class map with the ignore value(s) mapped to 255; out-of-range classes are a clear error."""
    label = np.asarray(label)
    if label.ndim == 3 and 1 in (label.shape[0], label.shape[-1]):
        label = label.reshape(label.shape[1:] if label.shape[0] == 1 else label.shape[:-1])
    if label.ndim != 2:
        raise DataFormatError(f"{path}: segmentation label has shape {tuple(label.shape)}; expected (H, W)")
    if label.dtype.kind == "f" and (not np.all(np.isfinite(label)) or np.any(label != np.round(label))):
        raise DataFormatError(f"{path}: segmentation label holds non-integer values; expected class ids")
    out = label.astype(np.int64)
    ignore = np.isin(out, ignore_values)
    bad = ~ignore & ((out < 0) | (out >= num_classes))
    if bad.any():
        values = np.unique(out[bad])[:10].tolist()
        raise DataFormatError(
            f"{path}: segmentation label has value(s) {values} outside the {num_classes} classes [0, {num_classes - 1}]"
            f" (ignore values: {list(ignore_values)}); check that the file belongs to this dataset and task"
        )
    out[ignore] = 255
    return out


def unit_normals(normals: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Normalise (3, H, W) normals to unit length; zero-length or invalid pixels become (0, 0, 0)."""
    normals = normals.astype(np.float32)
    norm = np.sqrt((normals * normals).sum(0, keepdims=True))
    ok = norm > 1e-6
    if valid is not None:
        ok &= valid[None]
    return np.where(ok, normals / np.where(ok, norm, 1.0), np.float32(0.0)).astype(np.float32)

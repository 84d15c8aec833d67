"""Reading MTAN/LibMTL/Auto-Lambda style `.npy` trees: ``<root>/<split>/<folder>/<N>.npy``, one file per sample.

Shared by the NYUv2 and Cityscapes loaders. Every check names the file and says what was expected, because a wrong
download (a different preprocessing, a truncated archive) otherwise shows up as a shape error deep in training.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._common import (
    DataFormatError,
    DatasetNotFoundError,
    channels_first,
    check_same_size,
    dataset_from_generator,
    segmentation_labels,
    unit_normals,
)


def list_samples(root: Path, split: str, folders: Mapping[str, str], dataset: str, layout_hint: str) -> list[dict]:
    """Per sample, the path of its file in every folder (``{"image": ..., task: ...}``), in numeric order.

    folders: ``{"image": "image", task_name: folder_name, ...}``. Raises `DatasetNotFoundError` naming the first
    missing folder or file.
    """
    split_dir = root / split
    if not split_dir.is_dir():
        raise DatasetNotFoundError(f"{dataset}: split folder {split_dir} does not exist; expected {layout_hint}")
    for key, folder in folders.items():
        if not (split_dir / folder).is_dir():
            extra = "" if key == "image" else f" (needed by task {key!r}; drop the task with tasks=[...] if absent)"
            raise DatasetNotFoundError(
                f"{dataset}: folder {split_dir / folder} does not exist{extra}; expected {layout_hint}"
            )
    indices = []
    for name in os.listdir(split_dir / folders["image"]):
        if not name.endswith(".npy"):
            continue
        stem = name[: -len(".npy")]
        if not stem.isdigit():
            raise DataFormatError(
                f"{dataset}: unexpected file {split_dir / folders['image'] / name}; files must be named <N>.npy"
            )
        indices.append(int(stem))
    if not indices:
        raise DatasetNotFoundError(
            f"{dataset}: no .npy files in {split_dir / folders['image']}; expected {layout_hint}"
        )
    samples = []
    for index in sorted(indices):
        sample = {}
        for key, folder in folders.items():
            path = split_dir / folder / f"{index}.npy"
            if not path.is_file():
                raise DatasetNotFoundError(
                    f"{dataset}: missing file {path} (the image {split_dir / folders['image'] / f'{index}.npy'} exists); "
                    "every sample needs one file per folder with the same number"
                )
            sample[key] = str(path)
        samples.append(sample)
    return samples


def file_stamp(samples: Sequence[Mapping[str, str]]) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime) of every file, passed to `from_generator` so that changed files invalidate its cache.

    A tuple, not a list: `from_generator` treats list arguments as shards.
    """
    out = []
    for sample in samples:
        for path in sample.values():
            st = os.stat(path)
            out.append((path, st.st_size, st.st_mtime_ns))
    return tuple(out)


def image_shape(path: str) -> tuple[int, int]:
    """Height and width of an image file without reading it all."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataFormatError(f"{path}: not a readable .npy array ({err})") from err
    height, width = channels_first(array, 3, path, "image").shape[1:]  # a view: nothing is read
    return int(height), int(width)


def load_image(path: str) -> np.ndarray:
    """(3, H, W) float32 in [0, 1] from a channel-last or channel-first float array (or uint8 0..255)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataFormatError(f"{path}: not a readable .npy array ({err})") from err
    image = channels_first(array, 3, path, "image")
    if image.dtype == np.uint8:
        return (image.astype(np.float32) / 255.0).astype(np.float32)
    image = image.astype(np.float32)
    if not np.all(np.isfinite(image)) or image.min() < -1e-3 or image.max() > 1.0 + 1e-3:
        raise DataFormatError(
            f"{path}: image values span [{float(np.nanmin(image)):.3g}, {float(np.nanmax(image)):.3g}]; expected floats "
            "in [0, 1] (MTAN/LibMTL preprocessing) or uint8"
        )
    return np.clip(image, 0.0, 1.0)


def load_label(path: str, spec: Mapping[str, Any], hw: tuple[int, int], image_path: str) -> np.ndarray:
    """One task's label in the shared schema, checked against the spec and the image size."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataFormatError(f"{path}: not a readable .npy array ({err})") from err
    kind = spec["kind"]
    if kind == "semantic_segmentation":
        label = segmentation_labels(array, int(spec["num_outputs"]), path)
        check_same_size(label.shape, hw, path, "segmentation label", image_path)
        return label
    channels = int(spec["num_outputs"])
    label = channels_first(array, channels, path, kind).astype(np.float32)
    check_same_size(label.shape[1:], hw, path, kind, image_path)
    valid = np.all(np.isfinite(label), axis=0)
    label = np.where(valid[None], label, np.float32(0.0))
    if kind in ("depth", "disparity"):
        # Invalid pixels are 0; negative values (e.g. Auto-Lambda's -1 for missing disparity) are invalid too.
        return np.where(label > 0, label, np.float32(0.0)).astype(np.float32)
    if kind == "surface_normals":
        return unit_normals(label, valid)
    return label


def resize_example(example: dict[str, np.ndarray], specs: Mapping[str, Mapping[str, Any]], size: tuple[int, int]):
    """Resize one example to `size`: image bilinear (antialiased), labels nearest; disparity scales with width."""
    import torch
    import torch.nn.functional as F

    height, width = example["image"].shape[1:]
    if (height, width) == tuple(size):
        return example
    out = {
        "image": F.interpolate(
            torch.from_numpy(example["image"])[None], size=size, mode="bilinear", antialias=True, align_corners=False
        )[0]
        .clamp_(0, 1)
        .numpy()
    }
    for name, spec in specs.items():
        if name not in example:
            continue
        x = torch.from_numpy(example[name])
        x = x[None, None].float() if spec["kind"] == "semantic_segmentation" else x[None]
        y = F.interpolate(x, size=size, mode="nearest")[0]
        if spec["kind"] == "semantic_segmentation":
            out[name] = y[0].round().to(torch.int64).numpy()
        else:
            if spec["kind"] == "disparity":  # disparity is in pixels of the stored width
                y = y * (size[1] / width)
            out[name] = y.numpy().astype(np.float32)
    return out


def npy_examples(
    samples: Sequence[dict[str, str]],
    specs: dict[str, dict[str, Any]],
    size: tuple[int, int] | None,
    stamp: tuple | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Generator for `Dataset.from_generator`: one schema example per sample (``stamp`` only keys the cache)."""
    del stamp
    first_hw: tuple[int, int] | None = None
    for sample in samples:
        image = load_image(sample["image"])
        hw = tuple(image.shape[1:])
        if first_hw is None:
            first_hw = hw
        elif hw != first_hw:
            raise DataFormatError(
                f"{sample['image']}: image is {hw[0]}x{hw[1]} but earlier images are {first_hw[0]}x{first_hw[1]}; "
                "all images of a dataset must share one size"
            )
        example = {"image": image}
        for name, spec in specs.items():
            example[name] = load_label(sample[name], spec, hw, sample["image"])
        if size is not None:
            example = resize_example(example, specs, size)
        yield example


def carve(n: int, first: int, seed: int) -> tuple[list[int], list[int]]:
    """Deterministically split range(n) into `first` and n - first indices (each sorted), seeded."""
    perm = np.random.default_rng(seed).permutation(n)
    return sorted(perm[:first].tolist()), sorted(perm[first:].tolist())


def split_datasets(
    parts: Mapping[str, Sequence[Mapping[str, str]]],
    specs: Mapping[str, Mapping[str, Any]],
    size: tuple[int, int] | None,
    features,
    description: str,
):
    """A torch-formatted `DatasetDict` of the `.npy` samples of each split (`parts`: split -> samples), read by
    `npy_examples` and resized to `size` (None: stored size); the samples' file stamps key the datasets cache."""
    from datasets import DatasetDict

    return DatasetDict(
        {
            split: dataset_from_generator(
                npy_examples,
                {"samples": tuple(samples), "specs": specs, "size": size, "stamp": file_stamp(samples)},
                features,
                description,
                split,
            )
            for split, samples in parts.items()
        }
    ).with_format("torch")

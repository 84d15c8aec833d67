"""Tiny in-memory datasets and encoders for tests and quick experiments (no download, a fraction of a second).

The labels are simple functions of the image (segmentation: the dominant colour channel of each 8x8 cell; depth:
the cell brightness; normals: a unit vector from the cell colour), so a few optimisation steps visibly lower the
validation loss, which makes "training works" a test that can fail.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


TINY_TASK_SPECS: dict[str, dict[str, Any]] = {
    "segmentation": {"kind": "semantic_segmentation", "num_outputs": 3, "ignore_index": 255},
    "depth": {"kind": "depth", "num_outputs": 1, "invalid_value": 0.0},
    "normals": {"kind": "surface_normals", "num_outputs": 3, "invalid_value": 0.0},
}

TINY_ENCODER = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "mlp_ratio": 2,
    "patch_size": 8,
    "image_size": 32,
}


def _split(num: int, size: int, cell: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cells = size // cell
    colours = rng.uniform(0.05, 1.0, size=(num, 3, cells, cells)).astype(np.float32)
    image = colours.repeat(cell, axis=2).repeat(cell, axis=3)
    image = np.clip(image + rng.normal(0, 0.03, size=image.shape), 0, 1).astype(np.float32)
    segmentation = colours.argmax(axis=1).repeat(cell, axis=1).repeat(cell, axis=2).astype(np.int64)
    segmentation[:, :1, :2] = 255  # a few ignored pixels
    depth = (0.5 + colours.mean(axis=1, keepdims=True) * 3).repeat(cell, axis=2).repeat(cell, axis=3)
    depth = depth.astype(np.float32)
    depth[:, :, -1:, -2:] = 0.0  # a few invalid pixels
    normals = colours - 0.5 + np.array([0, 0, 0.8], dtype=np.float32).reshape(1, 3, 1, 1)
    normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    normals = normals.repeat(cell, axis=2).repeat(cell, axis=3).astype(np.float32)
    return {"image": image, "segmentation": segmentation, "depth": depth, "normals": normals}


def make_tiny_dataset(
    train: int = 32, validation: int = 16, test: int = 0, image_size: int = 32, seed: int = 0, cell: int = 8
):
    """A torch-formatted `DatasetDict` in hf_simo's shared schema, carrying its task specs like the real loaders."""
    from datasets import Array2D, Array3D, Dataset, DatasetDict, DatasetInfo, Features

    features = Features(
        {
            "image": Array3D((3, image_size, image_size), "float32"),
            "segmentation": Array2D((image_size, image_size), "int64"),
            "depth": Array3D((1, image_size, image_size), "float32"),
            "normals": Array3D((3, image_size, image_size), "float32"),
        }
    )
    description = json.dumps({"hf_simo": {"source": "tiny", "task_specs": TINY_TASK_SPECS}}, sort_keys=True)
    splits = {"train": train, "validation": validation, "test": test}
    out = {}
    for index, (name, count) in enumerate(splits.items()):
        if count <= 0:
            continue
        columns = _split(count, image_size, cell, seed * 10 + index)
        out[name] = Dataset.from_dict(
            {k: list(v) for k, v in columns.items()},
            features=features,
            info=DatasetInfo(description=description, features=features),
        )
    return DatasetDict(out).with_format("torch")


def save_tiny_dataset(folder: str | os.PathLike, **kwargs: Any) -> Path:
    """`make_tiny_dataset(**kwargs)` saved with `save_to_disk` (what `--dataset <folder>` reads)."""
    folder = Path(folder)
    make_tiny_dataset(**kwargs).save_to_disk(str(folder))
    return folder


def save_tiny_encoder(folder: str | os.PathLike, seed: int = 0, **overrides: Any) -> Path:
    """A random tiny `Dinov2Model` saved as a checkpoint folder (a stand-in for facebook/dinov2-base)."""
    import torch
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    model = Dinov2Model(Dinov2Config(**{**TINY_ENCODER, **overrides}))
    model.save_pretrained(str(folder))
    return Path(folder)


__all__ = ["TINY_ENCODER", "TINY_TASK_SPECS", "make_tiny_dataset", "save_tiny_dataset", "save_tiny_encoder"]

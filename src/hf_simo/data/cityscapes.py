"""Cityscapes (19-class segmentation, 10-class part segmentation, disparity) in the shared schema.

On-disk layout, as preprocessed for Auto-Lambda/MTAN into ``.npy`` trees::

    <root>/{train,val}/{image,label_19,part_seg,depth}/<N>.npy

images (H, W, 3) floats in [0, 1], ``label_19`` and ``part_seg`` (H, W) class ids with -1 = ignore, ``depth``
(H, W, 1) *disparity* (inverse depth) with 0 (or negative) = invalid. Task names: ``segmentation``,
``part_segmentation``, ``disparity``.

Splits follow the paper (appendix A): the 2975 official training images carved deterministically into 2380 train and
595 validation, and the 500 official validation images as test. The paper works at 128x256: arrays stored at
another size are resized (image bilinear with antialiasing, labels nearest; disparity, a pixel offset, is scaled by
the width ratio). Pass ``image_size=None`` to keep the stored size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ._common import DatasetNotFoundError, example_features
from ._npytree import carve, image_shape, list_samples, split_datasets
from .specs import get_task_specs, make_description


CITYSCAPES_TASKS = ("segmentation", "part_segmentation", "disparity")
_FOLDERS = {"segmentation": "label_19", "part_segmentation": "part_seg", "disparity": "depth"}
_VAL_FRACTION = 595 / 2975  # paper: 2975 official train images -> 2380 train + 595 validation
_LAYOUT = "<root>/{train,val}/{image,label_19,part_seg,depth}/<N>.npy (Auto-Lambda/MTAN preprocessing)"


def load_cityscapes(
    root: str | os.PathLike,
    *,
    tasks: Sequence[str] | None = None,
    image_size: tuple[int, int] | None = (128, 256),
    split_seed: int = 0,
):
    """Cityscapes as a torch-formatted `datasets.DatasetDict` with ``train`` (2380), ``validation`` (595), ``test`` (500).

    Args:
        root: folder holding ``train/`` and ``val/``.
        tasks: subset of ``("segmentation", "part_segmentation", "disparity")``; default all three.
        image_size: (height, width) of the examples, default the paper's 128x256; None keeps the stored size.
        split_seed: seed of the permutation that carves validation out of the official training images.
    """
    all_specs = get_task_specs("cityscapes_real")
    tasks = list(CITYSCAPES_TASKS if tasks is None else tasks)
    unknown = [t for t in tasks if t not in all_specs]
    if unknown or not tasks:
        raise ValueError(f"unknown Cityscapes task(s) {unknown}; choose from {list(CITYSCAPES_TASKS)}")
    specs = {t: all_specs[t] for t in tasks}
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"Cityscapes root {root} does not exist; expected {_LAYOUT}")
    folders = {"image": "image", **{t: _FOLDERS[t] for t in specs}}
    train = list_samples(root, "train", folders, "Cityscapes", _LAYOUT)
    test = list_samples(root, "val", folders, "Cityscapes", _LAYOUT)
    size = tuple(image_size) if image_size is not None else image_shape(train[0]["image"])
    features = example_features(size[0], size[1], specs)
    description = make_description("cityscapes", specs, root=str(root), image_size=list(size), split_seed=split_seed)
    val_idx, train_idx = carve(len(train), int(round(len(train) * _VAL_FRACTION)), split_seed)
    parts = {"train": [train[i] for i in train_idx], "validation": [train[i] for i in val_idx], "test": test}
    return split_datasets(parts, specs, size, features, description)

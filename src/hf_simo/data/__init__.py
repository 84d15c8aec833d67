"""Data for hf_simo: the embedded benchmark and loaders for the paper's real datasets, all in one schema.

Every loader returns a `datasets.DatasetDict` (``train`` / ``validation`` / ``test``) whose examples are torch
tensors in the shared schema the model code relies on:

- ``image``: float32 (3, H, W), RGB in [0, 1], not normalised (the model's image processor normalises);
- one entry per task: semantic segmentation int64 (H, W) with ignore index 255; depth / disparity float32
  (1, H, W) with 0 = invalid; surface normals float32 (3, H, W) unit vectors, (0, 0, 0) = invalid; generic
  regression (edges, keypoints, reconstruction) float32 (C, H, W).

Public API:

- ``load_benchmark(preset="nyuv2", image_size=64, sizes=None, seed=0, cache_dir=None, *, use_cache=True)
  -> DatasetDict``: the procedural multi-task room benchmark (presets ``"nyuv2"``: segmentation/depth/normals;
  ``"taskonomy"``: reconstruction/depth/normals/keypoints/edges), deterministic by seed, cached under
  ``$HF_HOME/hf_simo``. Default for every recipe and the demo: it needs no download.
- ``get_task_specs(dataset_or_preset) -> dict[str, dict]``: the task specs (fields of `TaskSpec`) of a dataset built
  here (read from its ``info.description``) or of a preset/dataset name (``"nyuv2"``, ``"taskonomy"``,
  ``"nyuv2_real"``, ``"cityscapes_real"``, ``"taskonomy_real"``).
- ``load_nyuv2(root=None, layout="npy" | "parquet", *, tasks=None, split_seed=0) -> DatasetDict``: MTAN/LibMTL
  ``.npy`` tree or the ``tanganke/nyuv2`` parquet dataset (local folder or Hub id); splits 795 / 400 / 254.
- ``load_cityscapes(root, *, tasks=None, image_size=(128, 256), split_seed=0) -> DatasetDict``: Auto-Lambda ``.npy``
  tree; segmentation (19), part segmentation (10), disparity; splits 2380 / 595 / 500.
- ``load_taskonomy(root, *, tasks=None, buildings=None, max_per_building=None, decode="lazy", split_seed=0)
  -> DatasetDict``: Taskonomy tiny PNG trees with the paper's building splits; decodes lazily by default.
- ``random_scale_crop(batch, task_specs, scales=(1.0, 1.2, 1.5), generator=None) -> dict``: the paper's batched
  augmentation (zoom + crop, labels nearest, depth / scale, disparity * scale); ``make_collate_fn(task_specs,
  augment=True)`` wraps it for a `DataLoader`.
- ``generate_batches(preset, split, num_samples, image_size=64, seed=0)``: stream benchmark batches as numpy.

Errors: missing folders/files raise `DatasetNotFoundError` (a `FileNotFoundError`), malformed files raise
`DataFormatError` (a `ValueError`); both name the file and the expected layout.
"""

from __future__ import annotations

from ._common import DataFormatError, DatasetNotFoundError
from .cityscapes import load_cityscapes
from .nyuv2 import load_nyuv2
from .specs import BENCHMARK_CLASS_NAMES, BENCHMARK_PRESETS, get_task_specs
from .synthetic import generate_batches, load_benchmark, load_pretraining_images
from .taskonomy import TASKONOMY_BUILDINGS, load_taskonomy
from .transforms import make_collate_fn, random_scale_crop


__all__ = [
    "BENCHMARK_CLASS_NAMES",
    "BENCHMARK_PRESETS",
    "TASKONOMY_BUILDINGS",
    "DataFormatError",
    "DatasetNotFoundError",
    "generate_batches",
    "get_task_specs",
    "load_benchmark",
    "load_cityscapes",
    "load_nyuv2",
    "load_pretraining_images",
    "load_taskonomy",
    "make_collate_fn",
    "random_scale_crop",
]

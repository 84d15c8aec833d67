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

- ``load_training_data(dataset, ...)`` / ``load_data(DataArguments)``: a dataset by its ``--dataset`` name (preset,
  real dataset or saved folder), as every recipe and verb loads it; ``DataArguments``: those options.

Names load on first use (`hf_simo.utils.lazy`). Errors: missing folders/files raise `DatasetNotFoundError` (a `FileNotFoundError`), malformed files raise
`DataFormatError` (a `ValueError`); both name the file and the expected layout.
"""

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports


_EXPORTS = {
    "BENCHMARK_CLASS_NAMES": "hf_simo.data.specs",
    "BENCHMARK_PRESETS": "hf_simo.data.specs",
    "DataArguments": "hf_simo.data.arguments",
    "DataFormatError": "hf_simo.errors",
    "DatasetNotFoundError": "hf_simo.errors",
    "REAL_DATASETS": "hf_simo.data.specs",
    "TASKONOMY_BUILDINGS": "hf_simo.data.taskonomy",
    "check_splits": "hf_simo.data.loading",
    "default_cache_root": "hf_simo.data._common",
    "generate_batches": "hf_simo.data.synthetic",
    "get_task_specs": "hf_simo.data.specs",
    "load_benchmark": "hf_simo.data.synthetic",
    "load_cityscapes": "hf_simo.data.cityscapes",
    "load_data": "hf_simo.data.loading",
    "load_nyuv2": "hf_simo.data.nyuv2",
    "load_pretraining_images": "hf_simo.data.synthetic",
    "load_taskonomy": "hf_simo.data.taskonomy",
    "load_training_data": "hf_simo.data.loading",
    "make_augmentation": "hf_simo.data.transforms",
    "make_collate_fn": "hf_simo.data.transforms",
    "random_scale_crop": "hf_simo.data.transforms",
    "select_tasks": "hf_simo.data.loading",
    "task_columns": "hf_simo.data.loading",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for IDEs and type checkers; at run time the table above resolves the names
    from hf_simo.data._common import default_cache_root
    from hf_simo.data.arguments import DataArguments
    from hf_simo.data.cityscapes import load_cityscapes
    from hf_simo.data.loading import check_splits, load_data, load_training_data, select_tasks, task_columns
    from hf_simo.data.nyuv2 import load_nyuv2
    from hf_simo.data.specs import BENCHMARK_CLASS_NAMES, BENCHMARK_PRESETS, REAL_DATASETS, get_task_specs
    from hf_simo.data.synthetic import generate_batches, load_benchmark, load_pretraining_images
    from hf_simo.data.taskonomy import TASKONOMY_BUILDINGS, load_taskonomy
    from hf_simo.data.transforms import make_augmentation, make_collate_fn, random_scale_crop
    from hf_simo.errors import DataFormatError, DatasetNotFoundError

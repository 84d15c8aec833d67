"""Task specs of every dataset, and `get_task_specs`, the one public way to read them.

Specs are plain dicts with the fields of `hf_simo.configuration_simo.TaskSpec` (`kind`, `num_outputs`,
`ignore_index`, `invalid_value`, `loss`, `metric`, `id2label`), so `SimoConfig(tasks=get_task_specs(ds))` works
without this module importing the model code. `loss`/`metric` are only given where the paper departs from the kind's
default (Taskonomy: every task scored with the absolute error, normals trained with L1).

Every dataset built by `hf_simo.data` carries its specs in ``dataset.info.description`` as JSON
(``{"hf_simo": {"task_specs": ..., ...}}``), so they survive `save_to_disk`/`load_from_disk` and `with_format`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any


IGNORE_INDEX = 255

BENCHMARK_CLASS_NAMES = ("floor", "wall", "ceiling", "box", "ball", "barrel", "table", "cabinet", "bed", "lamp")
# the embedded benchmark's presets (the `--dataset` names that need no download) -> their tasks
BENCHMARK_PRESETS: dict[str, tuple[str, ...]] = {
    "nyuv2": ("segmentation", "depth", "normals"),
    "taskonomy": ("reconstruction", "depth", "normals", "keypoints", "edges"),
}
# the paper's datasets, as `--dataset` names (read from `--dataset_path`; "cityscapes" selects `cityscapes_real`)
REAL_DATASETS = ("nyuv2_real", "cityscapes", "taskonomy_real")
PRETRAINING_DATASET = "pretraining"  # images only: the encoder pre-training set of the embedded benchmark

# The 13-class NYUv2 labelling (Couprie et al. 2013) used by MTAN/LibMTL, in label order.
NYUV2_CLASS_NAMES = (
    "bed",
    "books",
    "ceiling",
    "chair",
    "floor",
    "furniture",
    "objects",
    "picture",
    "sofa",
    "table",
    "tv",
    "wall",
    "window",
)
CITYSCAPES_CLASS_NAMES = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)
# Part classes as mapped by Auto-Lambda from Cityscapes Panoptic Parts.
CITYSCAPES_PART_NAMES = (
    "background",
    "torso",
    "head",
    "arms",
    "legs",
    "vehicle window",
    "wheel",
    "vehicle light",
    "license plate",
    "chassis",
)
TASKONOMY_TASKS = ("reconstruction", "depth", "normals", "keypoints", "edges")


def _segmentation(class_names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "kind": "semantic_segmentation",
        "num_outputs": len(class_names),
        "ignore_index": IGNORE_INDEX,
        "id2label": dict(enumerate(class_names)),
    }


_DEPTH = {"kind": "depth", "num_outputs": 1, "invalid_value": 0.0}
_NORMALS = {"kind": "surface_normals", "num_outputs": 3, "invalid_value": 0.0}
_TASKONOMY_SPECS: dict[str, dict[str, Any]] = {
    "reconstruction": {"kind": "regression", "num_outputs": 3, "invalid_value": None},
    "depth": dict(_DEPTH),
    "normals": {**_NORMALS, "loss": "l1", "metric": "abs_err"},
    "keypoints": {"kind": "regression", "num_outputs": 1, "invalid_value": None},
    "edges": {"kind": "regression", "num_outputs": 1, "invalid_value": None},
}

DATASET_SPECS: dict[str, dict[str, dict[str, Any]]] = {
    "nyuv2_real": {"segmentation": _segmentation(NYUV2_CLASS_NAMES), "depth": dict(_DEPTH), "normals": dict(_NORMALS)},
    "cityscapes_real": {
        "segmentation": _segmentation(CITYSCAPES_CLASS_NAMES),
        "part_segmentation": _segmentation(CITYSCAPES_PART_NAMES),
        # the paper scores Cityscapes disparity (in pixels) by its absolute error, unaligned
        "disparity": {"kind": "disparity", "num_outputs": 1, "invalid_value": 0.0, "metric": "abs_err"},
    },
    "taskonomy_real": _TASKONOMY_SPECS,
}


def benchmark_task_specs(preset: str) -> dict[str, dict[str, Any]]:
    """Specs of an embedded-benchmark preset (``"nyuv2"`` or ``"taskonomy"``)."""
    if preset not in BENCHMARK_PRESETS:
        raise ValueError(f"unknown benchmark preset {preset!r}; choose one of {sorted(BENCHMARK_PRESETS)}")
    if preset == "nyuv2":
        specs = {
            "segmentation": _segmentation(BENCHMARK_CLASS_NAMES),
            "depth": dict(_DEPTH),
            "normals": dict(_NORMALS),
        }
    else:
        specs = _TASKONOMY_SPECS
    return copy.deepcopy(specs)


def make_description(source: str, task_specs: Mapping[str, Mapping[str, Any]], **extra: Any) -> str:
    """The JSON stored in ``info.description`` of every split."""
    return json.dumps({"hf_simo": {"source": source, "task_specs": dict(task_specs), **extra}})


def read_description(dataset: Any) -> dict[str, Any] | None:
    """The ``hf_simo`` metadata of a `datasets.Dataset`, or None when it has none."""
    info = getattr(dataset, "info", None)
    text = getattr(info, "description", None) or ""
    try:
        meta = json.loads(text)
    except (TypeError, ValueError):
        return None
    return meta.get("hf_simo") if isinstance(meta, dict) else None


_ALIASES = {"cityscapes": "cityscapes_real", "nyuv2-real": "nyuv2_real", "taskonomy-real": "taskonomy_real"}


def get_task_specs(dataset_or_preset: Any) -> dict[str, dict[str, Any]]:
    """Task specs of a dataset built by `hf_simo.data` or of a named preset, as ``{task: spec dict}``.

    Accepts a `datasets.Dataset`/`DatasetDict` (reads the metadata stored by the loaders), a benchmark preset name
    (``"nyuv2"``, ``"taskonomy"``), or a real dataset name (``"nyuv2_real"``, ``"cityscapes_real"`` or
    ``"cityscapes"``, ``"taskonomy_real"``). Returns a fresh copy; mutating it changes nothing stored.
    """
    if isinstance(dataset_or_preset, str):
        name = _ALIASES.get(dataset_or_preset, dataset_or_preset)
        if name in BENCHMARK_PRESETS:
            return benchmark_task_specs(name)
        if name in DATASET_SPECS:
            return copy.deepcopy(DATASET_SPECS[name])
        raise ValueError(
            f"unknown dataset or preset {dataset_or_preset!r}; benchmark presets: {sorted(BENCHMARK_PRESETS)}, "
            f"real datasets: {sorted(DATASET_SPECS)}"
        )
    splits = list(dataset_or_preset.values()) if isinstance(dataset_or_preset, Mapping) else [dataset_or_preset]
    for split in splits:
        meta = read_description(split)
        if meta and "task_specs" in meta:
            specs = copy.deepcopy(meta["task_specs"])
            for spec in specs.values():  # JSON turned the class ids of id2label into strings
                if isinstance(spec.get("id2label"), Mapping):
                    spec["id2label"] = {int(k): v for k, v in spec["id2label"].items()}
            return specs
    raise ValueError(
        f"{type(dataset_or_preset).__name__} carries no hf_simo task specs in info.description; build it with "
        "hf_simo.data (load_benchmark, load_nyuv2, load_cityscapes, load_taskonomy) or pass a preset name"
    )

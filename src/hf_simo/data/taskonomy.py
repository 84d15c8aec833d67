"""Taskonomy tiny (reconstruction, depth, normals, 2D keypoints, texture edges) in the shared schema.

On-disk layout (the Taskonomy release, one folder per domain and building; names as in the public release and
Omnidata's copy of it; 256x256 PNGs)::

    <root>/rgb/<building>/point_<P>_view_<V>_domain_rgb.png
    <root>/depth_zbuffer/<building>/point_<P>_view_<V>_domain_depth_zbuffer.png   16-bit, 1/512 m, 65535 = invalid
    <root>/normal/<building>/point_<P>_view_<V>_domain_normal.png                 8-bit RGB, 127-centred
    <root>/keypoints2d/<building>/point_<P>_view_<V>_domain_keypoints2d.png       16-bit
    <root>/edge_texture/<building>/point_<P>_view_<V>_domain_edge_texture.png     16-bit
    <root>/mask_valid/<building>/point_<P>_view_<V>_domain_mask_valid.png         optional, > 0 = valid
                                      (``..._domain_depth_zbuffer.png`` inside mask_valid/ is accepted too)

Normalisation: rgb / 255 (image, and the reconstruction target); depth = value / 512 metres; normals = rgb / 255 * 2
- 1, re-normalised to unit length; keypoints and edges = value / 65535 (/ 255 for 8-bit files). Invalid pixels
(mask_valid zero, or depth_zbuffer 65535, whichever folders exist) get each task's invalid value: depth 0, normals
(0, 0, 0); the image-derived tasks (keypoints, edges, reconstruction) have none and are kept. Taskonomy's normal axes differ
from the embedded benchmark's camera frame; the loader keeps the dataset's convention.

Splits are the paper's buildings (appendix A): 8 training buildings with at most 2000 samples each, 4 validation
and 4 test buildings with at most 1000 each; when a building has more, a seeded subset is kept (sorted by point and
view). 24,000 256x256 samples with 12 float channels do not fit in memory, so by default (``decode="lazy"``) the
dataset holds each sample's file paths (as JSON, in every schema column) and decodes PNGs on access: a `set_transform`
that returns torch tensors and survives `select_columns`/`select`/`shuffle`; do not call `with_format` on it, that
would replace the decoding. ``decode="eager"`` materialises the arrays (Arrow on disk) for small subsets.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._common import (
    DataFormatError,
    DatasetNotFoundError,
    check_same_size,
    dataset_from_generator,
    example_features,
    unit_normals,
)
from .specs import TASKONOMY_TASKS, get_task_specs, make_description


TASKONOMY_BUILDINGS: dict[str, tuple[str, ...]] = {
    "train": ("allensville", "coffeen", "collierville", "leonardo", "merom", "pinesdale", "ranchester", "stockman"),
    "validation": ("beechwood", "corozal", "klikitat", "shelbyville"),
    "test": ("ihlen", "mcdade", "onaga", "tolstoy"),
}
MAX_PER_BUILDING: dict[str, int] = {"train": 2000, "validation": 1000, "test": 1000}
DOMAINS = {
    "reconstruction": "rgb",
    "depth": "depth_zbuffer",
    "normals": "normal",
    "keypoints": "keypoints2d",
    "edges": "edge_texture",
}
_NAME = re.compile(r"point_(\d+)_view_(\d+)_domain_rgb\.png")
_LAYOUT = "<root>/<domain>/<building>/point_<P>_view_<V>_domain_<domain>.png (domains rgb, depth_zbuffer, normal, ...)"
DEPTH_INVALID = 65535
DEPTH_UNITS_PER_METRE = 512.0


def _file(root: Path, domain: str, building: str, point: str, view: str, suffix: str | None = None) -> Path:
    return root / domain / building / f"point_{point}_view_{view}_domain_{suffix or domain}.png"


def _list_building(root: Path, building: str, limit: int, seed: int) -> list[tuple[str, str]]:
    folder = root / "rgb" / building
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"Taskonomy: folder {folder} does not exist; expected {_LAYOUT}. Pass buildings={{...}} to use other "
            "buildings"
        )
    ids = []
    for name in os.listdir(folder):
        if not name.endswith(".png"):
            continue
        match = _NAME.fullmatch(name)
        if match is None:
            raise DataFormatError(
                f"Taskonomy: unexpected file {folder / name}; rgb files are named point_<P>_view_<V>_domain_rgb.png"
            )
        ids.append((match.group(1), match.group(2)))
    if not ids:
        raise DatasetNotFoundError(f"Taskonomy: no rgb PNGs in {folder}; expected {_LAYOUT}")
    ids.sort(key=lambda pv: (int(pv[0]), int(pv[1])))
    if len(ids) > limit:  # a seeded, building-specific subset, kept in (point, view) order
        rng = np.random.default_rng([seed, zlib.crc32(building.encode())])
        ids = [ids[i] for i in sorted(rng.choice(len(ids), size=limit, replace=False).tolist())]
    return ids


def _read_png(path: str) -> tuple[np.ndarray, int]:
    """Pixels and the maximum value of the file's bit depth (255 or 65535)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            mode = img.mode
            array = np.asarray(img.convert("RGB") if mode in ("RGBA", "P", "LA") else img)
    except (OSError, ValueError) as err:
        raise DataFormatError(f"{path}: not a readable PNG ({err})") from err
    return array, (65535 if mode.startswith("I") else 255)


def decode_sample(paths: Mapping[str, str | None], specs: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Decode one sample's PNGs (``paths``: ``rgb``, ``mask_valid`` (or None) and one entry per task's domain)."""
    rgb, _ = _read_png(paths["rgb"])
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=-1)
    if rgb.ndim != 3 or rgb.shape[-1] < 3 or rgb.dtype != np.uint8:
        raise DataFormatError(f"{paths['rgb']}: rgb has shape {rgb.shape} and dtype {rgb.dtype}; expected 8-bit RGB")
    hw = rgb.shape[:2]
    image = np.ascontiguousarray(rgb[..., :3].transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
    out = {"image": image}
    valid = None
    if paths.get("mask_valid"):
        mask, _ = _read_png(paths["mask_valid"])
        mask = mask[..., 0] if mask.ndim == 3 else mask
        check_same_size(mask.shape, hw, paths["mask_valid"], "mask_valid", paths["rgb"])
        valid = mask > 0
    raw_depth = None
    if paths.get("depth_zbuffer"):  # read for validity even when depth is not a task
        raw_depth, maxval = _read_png(paths["depth_zbuffer"])
        if raw_depth.ndim != 2 or maxval != 65535:
            raise DataFormatError(
                f"{paths['depth_zbuffer']}: depth_zbuffer must be a 16-bit single-channel PNG (1/512 m, 65535 = "
                f"invalid), got shape {raw_depth.shape} and dtype {raw_depth.dtype}"
            )
        check_same_size(raw_depth.shape, hw, paths["depth_zbuffer"], "depth_zbuffer", paths["rgb"])
        has_depth = raw_depth != DEPTH_INVALID
        valid = has_depth if valid is None else valid & has_depth
    for name in specs:
        if name == "reconstruction":
            out[name] = image.copy()
        elif name == "depth":
            depth = raw_depth.astype(np.float32) / np.float32(DEPTH_UNITS_PER_METRE)
            out[name] = np.where(valid, depth, np.float32(0.0))[None].astype(np.float32)
        elif name == "normals":
            path = paths["normal"]
            raw, maxval = _read_png(path)
            if raw.ndim != 3 or raw.shape[-1] < 3:
                raise DataFormatError(f"{path}: normal must be an RGB PNG, got shape {raw.shape}")
            check_same_size(raw.shape[:2], hw, path, "normal", paths["rgb"])
            normals = raw[..., :3].transpose(2, 0, 1).astype(np.float32) / np.float32(maxval) * 2 - 1
            out[name] = unit_normals(normals, valid)
        else:  # keypoints2d, edge_texture
            path = paths[DOMAINS[name]]
            raw, maxval = _read_png(path)
            raw = raw[..., 0] if raw.ndim == 3 else raw
            check_same_size(raw.shape, hw, path, DOMAINS[name], paths["rgb"])
            out[name] = (raw.astype(np.float32) / np.float32(maxval))[None]
    return out


class TaskonomyDecoder:
    """`set_transform` callable: batches of sample keys -> batches of decoded torch tensors (picklable for workers).

    Every schema column (``image`` and each task) of a lazy dataset holds the same JSON key (the sample's file
    paths), so `select_columns(["image", "depth"])` still works: only the requested columns are decoded.
    """

    def __init__(self, specs: Mapping[str, Mapping[str, Any]]) -> None:
        self.specs = {k: dict(v) for k, v in specs.items()}

    def __call__(self, batch: Mapping[str, list]) -> dict[str, Any]:
        import torch

        columns = [c for c in batch if c == "image" or c in self.specs]
        specs = {c: self.specs[c] for c in columns if c != "image"}
        keys = batch[columns[0]]
        decoded = [decode_sample(json.loads(key), specs) for key in keys]
        return {c: torch.from_numpy(np.stack([d[c] for d in decoded])) for c in columns}


def _eager_examples(rows: list[dict[str, str | None]], specs: dict[str, dict[str, Any]]):
    for row in rows:
        yield decode_sample(row, specs)


def load_taskonomy(
    root: str | os.PathLike,
    *,
    tasks: Sequence[str] | None = None,
    buildings: Mapping[str, Sequence[str]] | None = None,
    max_per_building: Mapping[str, int] | None = None,
    decode: str = "lazy",
    split_seed: int = 0,
):
    """Taskonomy tiny as a `datasets.DatasetDict` (train / validation / test by building) of torch tensors.

    Args:
        root: folder holding one sub-folder per domain (``rgb``, ``depth_zbuffer``, ``normal``, ...).
        tasks: subset of ``("reconstruction", "depth", "normals", "keypoints", "edges")``; default all five.
        buildings: ``{split: [building, ...]}``, default the paper's (`TASKONOMY_BUILDINGS`).
        max_per_building: ``{split: count}``, default 2000 / 1000 / 1000.
        decode: ``"lazy"`` (paths + on-access decoding, the default) or ``"eager"`` (arrays written to Arrow).
        split_seed: seed of the subset kept when a building has more samples than the cap.
    """
    from datasets import Dataset, DatasetDict

    all_specs = get_task_specs("taskonomy_real")
    tasks = list(TASKONOMY_TASKS if tasks is None else tasks)
    unknown = [t for t in tasks if t not in all_specs]
    if unknown or not tasks:
        raise ValueError(f"unknown Taskonomy task(s) {unknown}; choose from {list(TASKONOMY_TASKS)}")
    if decode not in ("lazy", "eager"):
        raise ValueError(f"decode must be 'lazy' or 'eager', got {decode!r}")
    specs = {t: all_specs[t] for t in tasks}
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"Taskonomy root {root} does not exist; expected {_LAYOUT}")
    domains = sorted({DOMAINS[t] for t in tasks} - {"rgb"})
    for domain in ["rgb", *domains]:
        if not (root / domain).is_dir():
            raise DatasetNotFoundError(
                f"Taskonomy: folder {root / domain} does not exist; expected {_LAYOUT}"
                + ("" if domain == "rgb" else " (drop the task with tasks=[...] if that domain is absent)")
            )
    has_mask = (root / "mask_valid").is_dir()
    if "depth_zbuffer" not in domains and (root / "depth_zbuffer").is_dir():
        domains.append("depth_zbuffer")  # depth == 65535 marks pixels without geometry for every task
    buildings = dict(TASKONOMY_BUILDINGS if buildings is None else buildings)
    caps = {**MAX_PER_BUILDING, **(max_per_building or {})}

    splits: dict[str, list[dict[str, str | None]]] = {}
    for split, names in buildings.items():
        rows = []
        for building in names:
            for point, view in _list_building(root, building, int(caps.get(split, 1000)), split_seed):
                row: dict[str, str | None] = {"rgb": str(_file(root, "rgb", building, point, view))}
                for domain in domains:
                    path = _file(root, domain, building, point, view)
                    if not path.is_file():
                        raise DatasetNotFoundError(
                            f"Taskonomy: missing file {path} (its rgb image {row['rgb']} exists); every sample needs "
                            "one PNG per domain"
                        )
                    row[domain] = str(path)
                row["mask_valid"] = None
                if has_mask:
                    for suffix in ("mask_valid", "depth_zbuffer"):
                        path = _file(root, "mask_valid", building, point, view, suffix)
                        if path.is_file():
                            row["mask_valid"] = str(path)
                            break
                    else:
                        raise DatasetNotFoundError(
                            f"Taskonomy: missing file {_file(root, 'mask_valid', building, point, view)} (the folder "
                            f"{root / 'mask_valid'} exists, so every sample needs a mask; remove the folder to derive "
                            "validity from depth instead)"
                        )
                rows.append(row)
        splits[split] = rows

    from PIL import Image

    first = next(rows[0]["rgb"] for rows in splits.values() if rows)
    with Image.open(first) as img:
        width, height = img.size
    description = make_description(
        "taskonomy", specs, root=str(root), buildings={k: list(v) for k, v in buildings.items()}, decode=decode
    )
    out = {}
    for split, rows in splits.items():
        if decode == "eager":
            out[split] = dataset_from_generator(
                _eager_examples,
                {"rows": tuple(rows), "specs": specs},
                example_features(height, width, specs),
                description,
                split,
            )
            continue
        keys = [json.dumps(row) for row in rows]
        columns = {name: keys for name in ["image", *specs]}
        ds = Dataset.from_dict({**columns, "building": [Path(row["rgb"]).parent.name for row in rows]}, split=split)
        ds.info.description = description
        ds.set_transform(TaskonomyDecoder(specs), columns=list(columns))
        out[split] = ds
    dd = DatasetDict(out)
    return dd.with_format("torch") if decode == "eager" else dd

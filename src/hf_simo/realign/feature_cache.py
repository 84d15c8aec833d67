"""The feature cache of head re-alignment: the frozen encoder's features of a fixed set of images with their labels,
computed once (`compute_feature_cache`) and kept in memory or on disk, one safetensors file per key of the encoder
weights, the data, the layers and the storage dtype (`encoder_fingerprint`), written atomically.

On disk the cache streams: batches are spooled to raw files as they are encoded and assembled into the safetensors
file (`hf_simo.realign.cache_files`), which is then memory-mapped, so neither computing nor training holds it whole
(head re-alignment indexes its batches' rows from the mapped tensors). Under `accelerate launch` with several
processes each process encodes its own contiguous share of the images; the shares are assembled in process order
(on disk by the main process, or gathered in memory), so every process holds the cache one process computes.

Size: features N × (1 + h·w) × C × L × b bytes (N images, an h×w patch grid, hidden size C, L cached layers, b = 4
for float32, 2 for bfloat16/float16; register tokens are not kept) plus the labels, N × Σ_task (label elements per
image × their bytes), stored as given (`feature_cache_bytes`). Taskonomy's 4k validation images at ViT-B/14 224 px
(16×16 patches, C = 768), 4 layers: 4000 × 257 × 768 × 4 × 4 B = 12.6 GB in float32, 6.3 GB in bfloat16.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..atomic import atomic_file
from ..errors import DataError, OptionError
from ..modeling_simo import SimoEncoding, SimoModel
from ..utils.logging import progress_bar
from .arguments import FEATURE_CACHE_DTYPE_NAMES
from .cache_files import TensorSpool, map_safetensors, write_safetensors


FEATURE_CACHE_DTYPES = {name: getattr(torch, name) for name in FEATURE_CACHE_DTYPE_NAMES}


def resolve_cache_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """`feature_cache_dtype` ("float32", "bfloat16", "float16" or the torch dtype) -> the torch dtype."""
    if isinstance(dtype, torch.dtype) and dtype in FEATURE_CACHE_DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in FEATURE_CACHE_DTYPES:
        return FEATURE_CACHE_DTYPES[dtype]
    raise OptionError(f"feature_cache_dtype must be one of {list(FEATURE_CACHE_DTYPES)}, got {dtype!r}")


def feature_cache_bytes(
    num_samples: int,
    grid: tuple[int, int],
    hidden_size: int,
    num_layers: int,
    dtype: str | torch.dtype = torch.float32,
    label_bytes_per_sample: int = 0,
) -> int:
    """Bytes of a cache's tensors (the module docstring's formula; the file adds a header of a few hundred bytes)."""
    itemsize = torch.empty((), dtype=resolve_cache_dtype(dtype)).element_size()
    tokens = 1 + grid[0] * grid[1]
    return num_samples * (tokens * hidden_size * num_layers * itemsize + label_bytes_per_sample)


@dataclass
class FeatureCache:
    """Encoder features of a fixed set of images, with their labels.

    features: block index -> (N, 1 + h*w, C); labels: task -> (N, ...); one grid and padding for all samples.
    Loaded from disk, the tensors are views of a memory map: `encoding(index)` reads only the rows it is given.
    """

    features: dict[int, torch.Tensor]
    labels: dict[str, torch.Tensor]
    grid: tuple[int, int]
    padding: tuple[int, int, int, int]
    key: str = ""

    def __len__(self) -> int:
        return next(iter(self.features.values())).shape[0]

    def encoding(self, index: torch.Tensor, device: torch.device | None = None) -> SimoEncoding:
        return SimoEncoding(
            features={layer: f[index].to(device=device, dtype=torch.float32) for layer, f in self.features.items()},
            grid=self.grid,
            padding=self.padding,
        )

    def metadata(self) -> dict[str, str]:
        return {"grid": json.dumps(list(self.grid)), "padding": json.dumps(list(self.padding)), "key": self.key}

    def save(self, path: str | os.PathLike) -> None:
        """One safetensors file, written atomically (`hf_simo.atomic.atomic_file`)."""
        tensors = {f"features.{k}": v.contiguous() for k, v in self.features.items()}
        tensors |= {f"labels.{k}": v.contiguous() for k, v in self.labels.items()}
        with atomic_file(path) as temporary:
            save_file(tensors, str(temporary), metadata=self.metadata())

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureCache:
        """The cache in `path`, memory-mapped (nothing is read until rows are indexed)."""
        tensors, metadata = map_safetensors(path)
        return cls(
            features={int(k.split(".", 1)[1]): v for k, v in tensors.items() if k.startswith("features.")},
            labels={k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("labels.")},
            grid=tuple(json.loads(metadata["grid"])),
            padding=tuple(json.loads(metadata["padding"])),
            key=metadata.get("key", ""),
        )


def encoder_fingerprint(model: SimoModel) -> str:
    """sha256 of the encoder's tensors (names, shapes, dtypes, bytes): the cache key's model half."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.dinov2.state_dict().items()):
        digest.update(name.encode())
        digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _processes(accelerator) -> int:
    return 1 if accelerator is None else int(getattr(accelerator, "num_processes", 1))


def _agree(accelerator, value):
    """The main process's `value` on every process (one decision for all, e.g. whether the cache file exists)."""
    if _processes(accelerator) == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]


def _gather_rows(accelerator, tensor: torch.Tensor) -> torch.Tensor:
    """Every process's rows (dim 0) of `tensor`, concatenated in process order; shares may differ in length. Half
    floats travel as float32 and booleans as uint8 (both exact), which every backend can gather."""
    original = tensor.dtype
    if original in (torch.float16, torch.bfloat16):
        tensor = tensor.float()
    elif original == torch.bool:
        tensor = tensor.to(torch.uint8)
    device = accelerator.device
    lengths = accelerator.gather(torch.tensor([tensor.shape[0]], device=device)).tolist()
    padded = torch.zeros((max(lengths), *tensor.shape[1:]), dtype=tensor.dtype, device=device)
    padded[: tensor.shape[0]] = tensor.to(device)
    gathered = accelerator.gather(padded).cpu()
    longest = max(lengths)
    rows = torch.cat([gathered[i * longest : i * longest + n] for i, n in enumerate(lengths)])
    return rows.to(original)


@torch.no_grad()
def compute_feature_cache(
    model: SimoModel,
    batches: Iterable[dict],
    *,
    dtype: str | torch.dtype = torch.float32,
    data_fingerprint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    accelerator=None,
) -> FeatureCache:
    """Run the encoder once over `batches` ({"pixel_values", "labels"}) and keep what the heads read.

    With `cache_dir` and `data_fingerprint` (e.g. a `datasets` fingerprint), the cache is stored on disk under a key
    of the encoder weights, the data, the layers and the storage `dtype` (float32, bfloat16 or float16), reused when
    the same key comes back, and returned memory-mapped. With an `accelerator` of several processes, `batches` are
    this process's contiguous share of the images (processes in order, e.g. `hf_simo.evaluation.process_shard`) and
    `data_fingerprint` that of the whole set: every process returns the cache of all images, in order.
    """
    dtype = resolve_cache_dtype(dtype)
    layers = model.config.feature_layers()
    processes = _processes(accelerator)
    key = path = None
    if cache_dir is not None and data_fingerprint is not None:
        payload = json.dumps([encoder_fingerprint(model), data_fingerprint, layers, str(dtype)])
        key = _agree(accelerator, hashlib.sha256(payload.encode()).hexdigest()[:32])  # one file for all processes
        path = Path(cache_dir) / f"features-{key}.safetensors"
        if _agree(accelerator, path.is_file()):
            return FeatureCache.load(path)
    rank = 0 if processes == 1 else accelerator.process_index
    spool = TensorSpool(Path(cache_dir) / f".features-{key}.parts" / f"process-{rank}") if key else None
    features: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    labels: dict[str, list[torch.Tensor]] = {}
    grid = padding = size = None
    was_training = model.training
    model.eval()
    try:
        for batch in progress_bar(batches, desc="Caching encoder features"):
            pixel_values = batch["pixel_values"].to(model.device)
            if size is not None and tuple(pixel_values.shape[-2:]) != size:
                raise DataError(
                    f"cached features need one image size; got {tuple(pixel_values.shape[-2:])} after {size} "
                    "(resize or crop the re-alignment data to a single size)"
                )
            size = tuple(pixel_values.shape[-2:])
            encoding = model.encode(pixel_values, layers=layers)
            grid, padding = encoding.grid, encoding.padding
            rows = {f"features.{layer}": encoding.features[layer].to(device="cpu", dtype=dtype) for layer in layers}
            rows |= {f"labels.{task}": value.cpu() for task, value in batch["labels"].items()}
            for name, value in rows.items():
                if spool is not None:
                    spool.append(name, value)
                elif name.startswith("features."):
                    features[int(name.split(".", 1)[1])].append(value)
                else:
                    labels.setdefault(name.split(".", 1)[1], []).append(value)
    finally:
        model.train(was_training)
    empty = [grid is None] if processes == 1 else [g is None for g in _all(accelerator, grid)]
    if any(empty):  # every process sees the same list, so all of them stop here together
        where = "" if processes == 1 else f" on process(es) {[i for i, e in enumerate(empty) if e]}"
        raise DataError(f"no batches to compute features from{where}: the re-alignment data is empty")
    if spool is not None:
        return _assemble(accelerator, spool, path, FeatureCache({}, {}, grid, padding, key).metadata())
    if processes > 1:  # in memory: every process gathers every share, in process order
        return FeatureCache(
            features={k: _gather_rows(accelerator, torch.cat(v)) for k, v in features.items()},
            labels={k: _gather_rows(accelerator, torch.cat(v)) for k, v in sorted(labels.items())},
            grid=grid,
            padding=padding,
        )
    return FeatureCache(
        features={k: torch.cat(v) for k, v in features.items()},
        labels={k: torch.cat(v) for k, v in labels.items()},
        grid=grid,
        padding=padding,
        key="",
    )


def _all(accelerator, value) -> list:
    from accelerate.utils import gather_object

    return gather_object([value])


def _assemble(accelerator, spool: TensorSpool, path: Path, metadata: dict[str, str]) -> FeatureCache:
    """Every process's spooled share -> one safetensors file (written by the main process, atomically) -> the
    memory-mapped cache on every process."""
    entries = spool.entries()
    processes = _processes(accelerator)
    shares = [entries] if processes == 1 else _all(accelerator, entries)
    parts_root = spool.folder.parent
    if processes == 1 or accelerator.is_main_process:
        write_safetensors(path, [(parts_root / f"process-{i}", e) for i, e in enumerate(shares)], metadata)
    if processes > 1:
        accelerator.wait_for_everyone()
    if processes == 1 or accelerator.is_main_process:
        shutil.rmtree(parts_root, ignore_errors=True)
    return FeatureCache.load(path)


__all__ = [
    "FEATURE_CACHE_DTYPES",
    "FeatureCache",
    "compute_feature_cache",
    "encoder_fingerprint",
    "feature_cache_bytes",
    "resolve_cache_dtype",
]

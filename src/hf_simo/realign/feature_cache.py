"""The feature cache of head re-alignment: the frozen encoder's features of a fixed set of images with their labels,
computed once (`compute_feature_cache`) and kept in memory or on disk, one safetensors file per key of the encoder
weights and the data (`encoder_fingerprint`), written atomically."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..atomic import atomic_file
from ..errors import DataError
from ..modeling_simo import SimoEncoding, SimoModel
from ..utils.logging import progress_bar


@dataclass
class FeatureCache:
    """Encoder features of a fixed set of images, with their labels.

    features: block index -> (N, 1 + h*w, C); labels: task -> (N, ...); one grid and padding for all samples.
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

    def save(self, path: str | os.PathLike) -> None:
        """One safetensors file, written atomically (`hf_simo.atomic.atomic_file`)."""
        tensors = {f"features.{k}": v.contiguous() for k, v in self.features.items()}
        tensors |= {f"labels.{k}": v.contiguous() for k, v in self.labels.items()}
        metadata = {"grid": json.dumps(list(self.grid)), "padding": json.dumps(list(self.padding)), "key": self.key}
        with atomic_file(path) as temporary:
            save_file(tensors, str(temporary), metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureCache:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
        tensors = load_file(str(path))
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


@torch.no_grad()
def compute_feature_cache(
    model: SimoModel,
    batches: Iterable[dict],
    *,
    dtype: torch.dtype = torch.float32,
    data_fingerprint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> FeatureCache:
    """Run the encoder once over `batches` ({"pixel_values", "labels"}) and keep what the heads read.

    With `cache_dir` and `data_fingerprint` (e.g. a `datasets` fingerprint), the cache is stored on disk under a key
    of the encoder weights, the data, the layers and the dtype, and reused when the same key comes back.
    """
    layers = model.config.feature_layers()
    key = None
    if cache_dir is not None and data_fingerprint is not None:
        payload = json.dumps([encoder_fingerprint(model), data_fingerprint, layers, str(dtype)])
        key = hashlib.sha256(payload.encode()).hexdigest()[:32]
        path = Path(cache_dir) / f"features-{key}.safetensors"
        if path.is_file():
            return FeatureCache.load(path)
    was_training = model.training
    model.eval()
    features: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    labels: dict[str, list[torch.Tensor]] = {}
    grid = padding = size = None
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
            for layer in layers:
                features[layer].append(encoding.features[layer].to(device="cpu", dtype=dtype))
            for task, value in batch["labels"].items():
                labels.setdefault(task, []).append(value.cpu())
    finally:
        model.train(was_training)
    if grid is None:
        raise DataError("no batches to compute features from: the re-alignment data is empty")
    cache = FeatureCache(
        features={k: torch.cat(v) for k, v in features.items()},
        labels={k: torch.cat(v) for k, v in labels.items()},
        grid=grid,
        padding=padding,
        key=key or "",
    )
    if key is not None:
        cache.save(Path(cache_dir) / f"features-{key}.safetensors")
    return cache


__all__ = ["FeatureCache", "compute_feature_cache", "encoder_fingerprint"]

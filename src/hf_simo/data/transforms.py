"""The paper's augmentation (MTAN's `RandomScaleCrop`), batched in torch, and a collate function that applies it.

Each sample is zoomed by a scale drawn from ``scales`` (default 1.0, 1.2, 1.5) and cropped back to its original size
at a random offset, identically for the image and every label: the image (and generic regression targets) with
bilinear interpolation, labels with nearest neighbour so that class ids, invalid pixels and unit normals stay exact.
Zooming in by s brings the scene s times closer, so depth is divided by s and disparity multiplied by s; normals are
unchanged (as in MTAN). The whole batch is resampled with one `grid_sample` call per tensor, no per-sample loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F


DEFAULT_SCALES = (1.0, 1.2, 1.5)


def sample_crop_params(
    batch: int, height: int, width: int, scales: Sequence[float], generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample: scale, resized height/width (``int(size * scale)`` as MTAN) and integer crop offsets (on CPU).

    Draws on the generator's device (a CUDA generator works too), then moves the few numbers to the CPU.
    """
    device = generator.device if generator is not None else torch.device("cpu")
    choice = torch.randint(len(scales), (batch,), generator=generator, device=device).cpu()
    scale = torch.tensor([float(s) for s in scales], dtype=torch.float64)[choice]
    new_h = torch.floor(height * scale).long()
    new_w = torch.floor(width * scale).long()
    # Uniform integer offsets in [0, new - size], drawn as floor(u * (range + 1)).
    u = torch.rand((2, batch), generator=generator, dtype=torch.float64, device=device).cpu()
    top = torch.minimum(torch.floor(u[0] * (new_h - height + 1)).long(), new_h - height)
    left = torch.minimum(torch.floor(u[1] * (new_w - width + 1)).long(), new_w - width)
    return scale, new_h, new_w, top, left


def _grid(height: int, width: int, new_h, new_w, top, left, dtype: torch.dtype) -> torch.Tensor:
    """Sampling grid of resize-to-(new_h, new_w)-then-crop-at-(top, left), in grid_sample's normalised coordinates.

    Output pixel x of the crop is pixel x + left of the resized image, whose centre maps back to input coordinate
    (x + left + 0.5) * width / new_w - 0.5 (align_corners=False), i.e. normalised (2 x_in + 1) / width - 1.
    """
    sx = (width / new_w.to(torch.float64)).view(-1, 1, 1)
    sy = (height / new_h.to(torch.float64)).view(-1, 1, 1)
    xs = torch.arange(width, dtype=torch.float64).view(1, 1, -1)
    ys = torch.arange(height, dtype=torch.float64).view(1, -1, 1)
    x_in = (xs + left.view(-1, 1, 1) + 0.5) * sx - 0.5
    y_in = (ys + top.view(-1, 1, 1) + 0.5) * sy - 0.5
    gx = (2 * x_in + 1) / width - 1
    gy = (2 * y_in + 1) / height - 1
    gx, gy = torch.broadcast_tensors(gx, gy)
    return torch.stack([gx, gy], dim=-1).to(dtype)


def _resample(x: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
    # Sampling positions stay inside the image for scales >= 1; "border" only guards rounding at the edges.
    if x.dtype.is_floating_point:
        return F.grid_sample(x, grid.to(x.dtype), mode=mode, padding_mode="border", align_corners=False)
    # Integer labels: exact through float32 for |values| < 2**24.
    out = F.grid_sample(
        x.to(torch.float32), grid.to(torch.float32), mode="nearest", padding_mode="border", align_corners=False
    )
    return out.round().to(x.dtype)


def random_scale_crop(
    batch: Mapping[str, Any],
    task_specs: Mapping[str, Mapping[str, Any]],
    scales: Sequence[float] = DEFAULT_SCALES,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """Randomly zoom (scale in ``scales``) and crop back to the original size, the same way for image and labels.

    Args:
        batch: ``image`` (B, 3, H, W) plus labels keyed by task name in the shared schema (segmentation (B, H, W)
            integers, others (B, C, H, W)); other entries are passed through untouched.
        task_specs: ``{task: spec}`` (e.g. `get_task_specs(dataset)`); the kind decides interpolation and rescaling.
        scales: zoom factors, each >= 1 (a crop never leaves the image).
        generator: a seeded `torch.Generator` makes the draw reproducible.

    Returns a new dict; inputs are not modified. Shapes and dtypes are preserved.
    """
    if not scales or any(float(s) < 1.0 for s in scales):
        raise ValueError(f"scales must be a non-empty list of factors >= 1, got {list(scales)!r}")
    if "image" not in batch:
        raise ValueError("batch has no 'image' entry; expected image (B, 3, H, W) plus one entry per task")
    image = batch["image"]
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        raise ValueError(f"batch['image'] must be a (B, 3, H, W) tensor, got {getattr(image, 'shape', type(image))}")
    b, _, height, width = image.shape
    for name, value in batch.items():
        dense = isinstance(value, torch.Tensor) and value.ndim >= 3 and tuple(value.shape[-2:]) == (height, width)
        if dense and name != "image" and name not in task_specs:
            raise ValueError(
                f"batch entry {name!r} looks like a dense label but has no task spec; pass its spec in task_specs "
                "(or drop it) so that it is transformed like the image"
            )
    scale, new_h, new_w, top, left = sample_crop_params(b, height, width, scales, generator)
    grid = _grid(height, width, new_h, new_w, top, left, torch.float32).to(image.device)
    # Samples drawn at scale 1 are returned exactly (grid_sample would add float rounding to bilinear channels).
    identity = ((new_h == height) & (new_w == width)).to(image.device).view(-1, 1, 1, 1)

    out: dict[str, Any] = dict(batch)
    out["image"] = torch.where(identity, image, _resample(image, grid, "bilinear"))
    for name, spec in task_specs.items():
        if name not in batch:
            continue
        label = batch[name]
        kind = spec["kind"]
        squeeze = kind == "semantic_segmentation"
        expected = (
            (b, height, width) if squeeze else (b, int(spec.get("num_outputs") or label.shape[1]), height, width)
        )
        if tuple(label.shape) != expected:
            raise ValueError(
                f"label {name!r} has shape {tuple(label.shape)}; expected {expected} to match the image {tuple(image.shape)}"
            )
        x = label[:, None] if squeeze else label
        mode = "bilinear" if kind == "regression" and spec.get("invalid_value") is None else "nearest"
        y = torch.where(identity, x, _resample(x, grid, mode))
        if kind in ("depth", "disparity"):
            factor = scale.to(device=y.device, dtype=y.dtype).view(-1, 1, 1, 1)
            y = y / factor if kind == "depth" else y * factor
        out[name] = y[:, 0] if squeeze else y
    return out


def make_augmentation(
    task_specs: Mapping[str, Mapping[str, Any]], scales: Sequence[float] | None = None
) -> Callable[[dict[str, Any], torch.Generator], dict[str, Any]]:
    """The paper's random scale-crop, batched, on the device; labels move with the image (a training loop's
    `BatchTransform`: called with each batch and a generator the loop seeds per batch)."""
    kwargs = {} if scales is None else {"scales": tuple(scales)}

    def transform(batch: dict[str, Any], generator: torch.Generator) -> dict[str, Any]:
        return random_scale_crop(batch, task_specs, generator=generator, **kwargs)

    return transform


def make_collate_fn(
    task_specs: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    augment: bool = False,
    scales: Sequence[float] = DEFAULT_SCALES,
    generator: torch.Generator | None = None,
) -> Callable[[list[Mapping[str, Any]]], dict[str, Any]]:
    """A `DataLoader` collate function: stacks examples and, with ``augment``, applies `random_scale_crop`."""
    if augment and task_specs is None:
        raise ValueError("augment=True needs task_specs (e.g. get_task_specs(dataset))")

    def collate(examples: list[Mapping[str, Any]]) -> dict[str, Any]:
        batch = {key: torch.stack([torch.as_tensor(ex[key]) for ex in examples]) for key in examples[0]}
        if augment:
            batch = random_scale_crop(batch, task_specs, scales=scales, generator=generator)
        return batch

    return collate

"""`hf-simo predict MODEL IMAGE... --output_dir DIR`: predict every task for image files and write figures.

For each image, `<stem>.<task>.png` per task (colorized depth with a colour bar, segmentation overlaid with a legend of
its class names, normals as RGB; see `hf_simo.analysis.prediction_plots`) and `<stem>.grid.png`, the input and every
task side by side. Every input is checked before any work (readable image, at least one patch, known tasks), each
PNG is written to a temporary file and renamed, so the folder never holds a half-written file, and a second run
overwrites the same names instead of adding files. Images that resize to one size share a batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import OptionError, UnknownTaskError
from .hub import HubOptions
from .image_processing_simo import ImageInputError, as_simo_image_processor, load_rgb_image, make_image_processor
from .utils.logging import progress_bar


def output_names(images: Sequence[str | os.PathLike]) -> list[str]:
    """One file stem per image: its name without extension, `-2`, `-3`, ... for repeated names (stable order)."""
    seen: dict[str, int] = {}
    stems = []
    for path in images:
        stem = Path(path).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def check_images(images: Sequence[str | os.PathLike], patch: int) -> None:
    """Refuse, before any work, an empty list, a missing or unreadable file, an image smaller than one patch."""
    if not images:
        raise ImageInputError("no images given; pass one or more image files")
    for path in images:
        path = Path(path)
        if not path.is_file():
            raise ImageInputError(f"{path} is not a file")
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise ImageInputError(f"{path} is not a readable image ({err})") from err
        if width < patch or height < patch:
            raise ImageInputError(f"{path} is {width}×{height} pixels, smaller than one {patch}×{patch} patch")


def load_model(model: str, revision: str | None = None, device: str | None = None, hub: HubOptions | None = None):
    """The `SimoModel` (eval mode, on `device`, default CUDA when available) and its SIMO image processor."""
    from transformers import AutoImageProcessor

    from .modeling_simo import SimoModel

    hub = hub or HubOptions()
    loaded = SimoModel.from_pretrained(model, revision=revision, **hub.model_kwargs()).eval()
    try:
        processor = AutoImageProcessor.from_pretrained(
            loaded.config.name_or_path or model, revision=revision, **hub.download_kwargs()
        )
    except (OSError, ValueError):  # a folder without preprocessor_config.json
        processor = None
    processor = as_simo_image_processor(processor) or make_image_processor(loaded.config)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        loaded.to(torch.device(device))
    except (RuntimeError, AssertionError) as err:  # an unknown or unavailable device
        raise OptionError(f"cannot use device {device!r}: {' '.join(str(err).split())}") from err
    return loaded, processor


def predict_to_folder(
    model: str,
    images: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    tasks: Sequence[str] | None = None,
    revision: str | None = None,
    device: str | None = None,
    batch_size: int = 4,
    hub: HubOptions | None = None,
) -> list[Path]:
    """Predict `tasks` (default all) for each image file and write the PNGs (see the module docstring); `hub`: how
    a Hub model is read (token, cache, offline). A progress bar counts the images (`hf_simo.utils.logging`)."""
    from .analysis.plots import PNG_ONLY, save_figure
    from .analysis.prediction_plots import plot_predictions, plot_task

    if batch_size < 1:
        raise OptionError(f"--per_device_eval_batch_size must be >= 1, got {batch_size}")
    loaded, processor = load_model(model, revision=revision, device=device, hub=hub)
    names = loaded.task_names if not tasks else list(tasks)
    unknown = [name for name in names if name not in loaded.task_names]
    if unknown:
        raise UnknownTaskError(f"unknown task(s) {unknown}; {model} has tasks {loaded.task_names}")
    specs = {name: loaded.config.get_task(name) for name in names}
    patch = loaded.config.backbone_config.patch_size
    check_images(images, patch[0] if isinstance(patch, (list, tuple)) else int(patch))
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)

    written: list[Path] = []
    stems = output_names(images)
    bar = progress_bar(total=len(images), desc="predict", unit="image")
    pending: list[tuple[str, Image.Image, torch.Tensor]] = []

    def flush() -> None:
        pixel_values = torch.cat([values for _, _, values in pending]).to(loaded.device, loaded.dtype)
        with torch.no_grad():
            outputs = loaded(pixel_values=pixel_values, tasks=names)
        sizes = [(image.height, image.width) for _, image, _ in pending]
        results = processor.post_process(outputs, target_sizes=sizes)
        for (stem, image, _), result in zip(pending, results):
            rgb = np.asarray(image, dtype=np.float32) / 255.0
            for name in names:
                figure = plot_task(rgb, name, specs[name], result[name])
                written.extend(save_figure(figure, output / f"{stem}.{name}", PNG_ONLY))
            grid = plot_predictions(rgb, {name: result[name] for name in names}, specs, title=stem)
            written.extend(save_figure(grid, output / f"{stem}.grid", PNG_ONLY))
            bar.update(1)
        pending.clear()

    for stem, path in zip(stems, images):
        image = load_rgb_image(path, name=str(path))
        values = processor(image, return_tensors="pt")["pixel_values"]
        if pending and pending[0][2].shape[-2:] != values.shape[-2:]:
            flush()  # a batch holds images of one processed size
        pending.append((stem, image, values))
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    bar.close()
    return written


__all__ = ["check_images", "load_model", "output_names", "predict_to_folder"]

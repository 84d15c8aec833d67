"""`SimoImageProcessor`: transformers' DPT image processor plus post-processing for every SIMO task kind.

Pre-processing is DPT's (the processor of DPT-DINOv2 and Depth Anything): resize keeping the aspect ratio to about
`size` with sides a multiple of the patch (`keep_aspect_ratio`, `ensure_multiple_of`), rescale, ImageNet
normalisation. On top of it, every input is first turned into an 8-bit RGB image the way a user expects (paths,
URLs, PIL images of any mode, arrays or tensors in HWC or CHW, grayscale, RGBA composited on white, 16-bit scaled,
floats in [0, 1]) and refused with a message naming the image when it cannot be (unreadable file, smaller than one
patch, an empty list).

`post_process` brings each task's prediction back to each image's original size: class-id maps for segmentation,
depth in the model's units (DPT's bicubic resize), unit normals, regression values. `post_process_depth_estimation`
and `post_process_semantic_segmentation` are DPT's own, reading a per-task output or a whole `SimoModelOutput`.

Both of transformers' backends are provided: `SimoImageProcessorPil` (PIL) and, when torchvision is installed,
`SimoImageProcessor` (torchvision); `AutoImageProcessor` picks one as it does for DPT. Folders saved before this
processor existed hold a plain `DPTImageProcessor` without resizing; they still load, and `as_simo_image_processor`
upgrades one with its settings unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from transformers.image_transforms import convert_to_rgb
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling, load_image
from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil, get_resize_output_image_size
from transformers.utils import is_torchvision_available

from .errors import ImageInputError
from .modeling_outputs import task_kind_of


DEFAULT_SIZE = 518  # DINOv2's pre-training resolution, Depth Anything's default
DEFAULT_PATCH_SIZE = 14
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


# ---------------------------------------------------------------------------------------------- inputs


def load_rgb_image(image: Any, *, name: str = "image", timeout: float | None = None) -> Image.Image:
    """One input (path, URL, PIL image, HWC/CHW array or tensor) as an 8-bit RGB PIL image, or `ImageInputError`."""
    if isinstance(image, (str, os.PathLike)):
        text = os.fspath(image)
        if text.startswith(("http://", "https://")):
            try:
                image = load_image(text, timeout=timeout)
            except Exception as err:  # noqa: BLE001 - network and decoding errors, reported in one line
                raise ImageInputError(f"cannot load {name} from {text}: {' '.join(str(err).split())}") from err
        else:
            path = Path(text)
            if not path.is_file():
                raise ImageInputError(f"{name}: {text} is not a file")
            try:
                with Image.open(path) as opened:
                    opened.load()
                    image = ImageOps.exif_transpose(opened)
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
                raise ImageInputError(f"{name}: {text} is not a readable image ({err})") from err
        return _pil_to_rgb(image, name)
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image, name)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image, name)
    raise ImageInputError(
        f"{name} is a {type(image).__name__}; pass a path, a URL, a PIL image or an (H, W[, C]) / (C, H, W) array"
    )


def _pil_to_rgb(image: Image.Image, name: str) -> Image.Image:
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        return _array_to_rgb(np.asarray(image), name, sixteen_bit=image.mode != "F")
    if image.mode == "RGB":
        return image
    return Image.fromarray(convert_to_rgb(image, return_numpy=True))


def _array_to_rgb(array: np.ndarray, name: str, sixteen_bit: bool = False) -> Image.Image:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ImageInputError(
            f"{name} has shape {tuple(array.shape)}; expected (H, W) grayscale, (H, W, 3|4) or (3|4, H, W)"
        )
    if array.size == 0:
        raise ImageInputError(f"{name} is empty (shape {tuple(array.shape)})")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageInputError(f"{name} contains NaN or inf")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ImageInputError(
                f"{name} is a float image with values in [{low:.3g}, {high:.3g}]; float images must be in [0, 1] "
                "(or pass uint8 / uint16 pixels)"
            )
        array = np.round(array * 255.0).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0:
            raise ImageInputError(f"{name} has negative pixel values (min {low})")
        if array.dtype == np.uint16 or sixteen_bit or high > 255:
            if high > 65535:
                raise ImageInputError(f"{name} has pixel values up to {high}; expected 8-bit or 16-bit images")
            array = np.round(array.astype(np.float64) / 257.0).astype(np.uint8)  # 65535 -> 255
        else:
            array = array.astype(np.uint8)
    else:
        raise ImageInputError(f"{name} has dtype {array.dtype}; expected uint8, uint16, bool or floats in [0, 1]")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.shape[-1] == 4:
        return Image.fromarray(convert_to_rgb(Image.fromarray(array, mode="RGBA"), return_numpy=True))
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


def as_image_list(images: Any) -> list[Any]:
    """A single image or a batch (list, tuple, (N, H, W, C) array / (N, C, H, W) tensor) as a list; never empty."""
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4 or isinstance(images, (list, tuple)):
        images = list(images)
    else:
        images = [images]
    if not images:
        raise ImageInputError("no images given; pass an image, or a non-empty list of images")
    return images


# ---------------------------------------------------------------------------------------------- processor


class SimoImageProcessingMixin:
    """What hf_simo adds to DPT's processors: robust input conversion and post-processing for every task kind."""

    # defaults (before DPT's in the MRO): DINOv2's resolution and patch, ImageNet statistics, keep-aspect resize
    image_mean = list(IMAGENET_DEFAULT_MEAN)
    image_std = list(IMAGENET_DEFAULT_STD)
    size = {"height": DEFAULT_SIZE, "width": DEFAULT_SIZE}
    keep_aspect_ratio = True
    ensure_multiple_of = DEFAULT_PATCH_SIZE
    resample = PILImageResampling.BICUBIC
    do_pad = False

    def preprocess(self, images: Any, segmentation_maps: Any = None, **kwargs: Any):
        """DPT's `preprocess`, after `load_rgb_image` on each image and a size check against the patch."""
        images = [load_rgb_image(image, name=f"image {i}") for i, image in enumerate(as_image_list(images))]
        for i, image in enumerate(images):
            self._check_size(image, i, **kwargs)
        return super().preprocess(images, segmentation_maps, **kwargs)

    def _check_size(self, image: Image.Image, index: int, **kwargs: Any) -> None:
        patch = int(kwargs.get("ensure_multiple_of") or getattr(self, "ensure_multiple_of", 1) or 1)
        width, height = image.size
        if height < patch or width < patch:
            raise ImageInputError(
                f"image {index} is {width}×{height} pixels, smaller than one {patch}×{patch} patch; "
                f"use images of at least {patch}×{patch}"
            )
        if kwargs.get("do_resize", self.do_resize):
            size = kwargs.get("size") or self.size
            target = (size["height"], size["width"]) if isinstance(size, Mapping) else (size.height, size.width)
            out = get_resize_output_image_size(
                np.zeros((1, height, width)),
                output_size=target,
                keep_aspect_ratio=kwargs.get("keep_aspect_ratio", self.keep_aspect_ratio),
                multiple=patch,
            )
            if out.height < patch or out.width < patch:
                raise ImageInputError(
                    f"image {index} ({width}×{height}) is too elongated: resizing it to about {target[1]}×{target[0]} "
                    f"gives {out.width}×{out.height}, smaller than one {patch}×{patch} patch; crop it first"
                )

    # ------------------------------------------------------------------ post-processing

    def post_process(
        self,
        outputs: Any,
        target_sizes: Sequence[tuple[int, int]] | torch.Tensor | None = None,
        tasks: Sequence[str] | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        """Per image, task -> its prediction at `target_sizes[i]` (default: the model's output size).

        Segmentation: (H, W) class ids; depth/disparity: (H, W) in the model's units; surface normals: (3, H, W) unit
        vectors; regression: (C, H, W). `outputs` is a `SimoModelOutput` (or a mapping task -> per-task output).
        """
        task_outputs = getattr(outputs, "task_outputs", None)
        if task_outputs is None:
            if not isinstance(outputs, Mapping):
                raise TypeError(f"expected a SimoModelOutput, got {type(outputs).__name__}")
            task_outputs = outputs
        names = list(task_outputs) if tasks is None else list(tasks)
        unknown = [name for name in names if name not in task_outputs]
        if unknown:
            raise KeyError(f"no output for task(s) {unknown}; the outputs have tasks {list(task_outputs)}")
        per_task = {name: self.post_process_task(task_outputs[name], target_sizes) for name in names}
        batch = len(next(iter(per_task.values()))) if per_task else 0
        return [{name: values[i] for name, values in per_task.items()} for i in range(batch)]

    def post_process_task(self, output: Any, target_sizes=None) -> list[torch.Tensor]:
        """One task's per-image results (see `post_process`), chosen by the type of its output."""
        kind = task_kind_of(output)
        if kind == "semantic_segmentation":
            return self.post_process_semantic_segmentation(output, target_sizes)
        if kind == "depth":
            return [item["predicted_depth"] for item in self.post_process_depth_estimation(output, target_sizes)]
        if kind == "surface_normals":
            return self.post_process_surface_normals(output, target_sizes)
        return self.post_process_dense_regression(output, target_sizes)

    def post_process_semantic_segmentation(self, outputs, target_sizes=None, **kwargs):
        """DPT's, on a `SemanticSegmenterOutput` or a `SimoModelOutput` with exactly one segmentation task."""
        _check_single(outputs, "logits", "segmentation")
        return super().post_process_semantic_segmentation(outputs, target_sizes, **kwargs)

    def post_process_depth_estimation(self, outputs, target_sizes=None):
        """DPT's, on a `DepthEstimatorOutput` or a `SimoModelOutput` with exactly one depth/disparity task."""
        _check_single(outputs, "predicted_depth", "depth or disparity")
        return super().post_process_depth_estimation(outputs, target_sizes)

    def post_process_surface_normals(self, outputs, target_sizes=None) -> list[torch.Tensor]:
        """(3, H, W) unit normals per image: bilinear resize of each component, then re-normalised."""
        values = _resized(outputs.predicted_normals, target_sizes)
        return [F.normalize(v, dim=0, eps=1e-6) for v in values]

    def post_process_dense_regression(self, outputs, target_sizes=None) -> list[torch.Tensor]:
        """(C, H, W) values per image, bilinearly resized."""
        return _resized(outputs.predicted_values, target_sizes)


def _check_single(outputs: Any, field: str, what: str) -> None:
    task_outputs = getattr(outputs, "task_outputs", None)
    if task_outputs is not None and getattr(outputs, field, None) is None:
        raise ValueError(
            f"this output has no single {what} task (tasks: {list(task_outputs)}); pass one task's output, "
            f"e.g. outputs.task_outputs[name]"
        )


def _resized(values: torch.Tensor, target_sizes) -> list[torch.Tensor]:
    if target_sizes is not None and len(target_sizes) != len(values):
        raise ValueError(f"got {len(target_sizes)} target sizes for a batch of {len(values)} predictions")
    out = []
    for i, value in enumerate(values):
        if target_sizes is not None:
            size = tuple(int(s) for s in target_sizes[i])
            value = F.interpolate(value[None].float(), size=size, mode="bilinear", align_corners=False)[0]
        out.append(value)
    return out


class SimoImageProcessorPil(SimoImageProcessingMixin, DPTImageProcessorPil):
    """The PIL backend (saved as `image_processor_type: SimoImageProcessor`, like every PIL processor)."""


PROCESSOR_CLASSES: dict[str, type] = {"pil": SimoImageProcessorPil}

if is_torchvision_available():
    from transformers.models.dpt.image_processing_dpt import DPTImageProcessor

    class SimoImageProcessor(SimoImageProcessingMixin, DPTImageProcessor):
        """The torchvision backend."""

    PROCESSOR_CLASSES["torchvision"] = SimoImageProcessor


def make_image_processor(
    config: Any = None,
    *,
    size: int | tuple[int, int] | None = None,
    image_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    image_std: Sequence[float] = IMAGENET_DEFAULT_STD,
    do_resize: bool = True,
):
    """The processor saved with a model: DPT-style resize to about `size` (keeping the aspect ratio, sides a multiple
    of the patch), ImageNet normalisation.

    `config` (a `SimoConfig` or `Dinov2Config`) gives the patch size and the default `size`, the encoder's
    `image_size` (the embedded benchmark's encoders are pre-trained at the benchmark's resolution, so its models keep
    their training size). `size` is an int (square target) or (height, width), e.g. the training images' size.
    """
    backbone = getattr(config, "backbone_config", config)
    patch = getattr(backbone, "patch_size", DEFAULT_PATCH_SIZE)
    patch = patch[0] if isinstance(patch, (list, tuple)) else int(patch)
    if size is None:
        size = getattr(backbone, "image_size", DEFAULT_SIZE)
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if min(height, width) < patch:
        raise ValueError(f"size {height}×{width} is smaller than one {patch}×{patch} patch")
    processor_class = PROCESSOR_CLASSES.get("torchvision", SimoImageProcessorPil)
    return processor_class(
        do_resize=do_resize,
        size={"height": height, "width": width},
        keep_aspect_ratio=True,
        ensure_multiple_of=patch,
        resample=PILImageResampling.BICUBIC,
        do_pad=False,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(image_mean),
        image_std=list(image_std),
    )


def as_simo_image_processor(processor: Any):
    """`processor` if it already is a SIMO processor, else one with the same settings (e.g. an old folder's plain
    `DPTImageProcessor`, which never resizes); None stays None."""
    if processor is None or isinstance(processor, SimoImageProcessingMixin):
        return processor
    if not hasattr(processor, "to_dict"):
        raise TypeError(f"expected an image processor, got {type(processor).__name__}")
    settings = {k: v for k, v in processor.to_dict().items() if k not in ("image_processor_type", "processor_class")}
    backend = "torchvision" if "Pil" not in type(processor).__name__ and "torchvision" in PROCESSOR_CLASSES else "pil"
    return PROCESSOR_CLASSES[backend].from_dict(settings)


__all__ = [
    "DEFAULT_PATCH_SIZE",
    "DEFAULT_SIZE",
    "ImageInputError",
    "PROCESSOR_CLASSES",
    "SimoImageProcessingMixin",
    "SimoImageProcessorPil",
    "as_image_list",
    "as_simo_image_processor",
    "load_rgb_image",
    "make_image_processor",
]

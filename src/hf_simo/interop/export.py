"""Exporting one task of a SimoModel back to its transformers class, with the (merged) encoder, so it runs in
`transformers.pipeline("depth-estimation")` without hf_simo installed.

Extension point: a new target is one module under `hf_simo/interop/exporters/` defining `EXPORTER` (an
`hf_simo.interop.plan.Exporter`), plus one line in `EXPORTER_MODULES` below. The exported tensor names are the
target importer's name map applied backwards, so import -> export gives back every original tensor exactly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_folder
from ..errors import UnknownTaskError, UnsupportedExportError
from ..utils.logging import get_logger
from .exporters import depth_anything, dpt
from .loading import PREPROCESSOR_NAME
from .plan import Exporter


EXPORTER_MODULES = (depth_anything, dpt)
EXPORTERS: dict[str, Exporter] = {module.EXPORTER.head: module.EXPORTER for module in EXPORTER_MODULES}
EXTENSION_POINT = "hf_simo/interop/exporters/<target>.py defining EXPORTER, listed in hf_simo.interop.export"
logger = get_logger(__name__)


def check_exportable(model: Any, task: str) -> Exporter:
    """The exporter of `task`, or an error naming why transformers cannot express it (before anything is built)."""
    if task not in model.config.tasks:
        raise UnknownTaskError(f"unknown task {task!r}; this model has tasks {model.config.task_names}")
    spec = model.config.get_task(task)
    exporter = EXPORTERS.get(spec.head)
    if exporter is None or spec.kind not in exporter.kinds:
        targets = ", ".join(
            f"{e.head} heads of kind {'/'.join(e.kinds)} -> {e.target_class.__name__}" for e in EXPORTERS.values()
        )
        raise UnsupportedExportError(
            f"task {task!r} is a {spec.kind} task with a {spec.head} head, which no transformers class holds; "
            f"exportable: {targets}. Publish the SimoModel instead (hf-simo push), or add a target: {EXTENSION_POINT}"
        )
    family = model.config.backbone_config.model_type
    if family != "dinov2":
        raise UnsupportedExportError(
            f"task {task!r}: the encoder is {family!r}; transformers' {exporter.target_class.__name__} runs DINOv2 "
            "backbones the way hf_simo's head reads them (its neck takes hidden_state[:, 1:] as the patch grid, which "
            "register tokens break). Publish the SimoModel instead (hf-simo push)"
        )
    if list(spec.layers) != sorted(set(spec.layers)):
        raise UnsupportedExportError(
            f"task {task!r} reads layers {spec.layers}; transformers' backbones take distinct increasing out_indices"
        )
    if model.config.block_adapter is not None:
        adapters = [p for n, p in model.named_parameters() if ".adapter_slot." in n or ".relu_adapter." in n]
        if model.config.block_adapter != "linear" or any(bool(p.detach().any()) for p in adapters):
            raise UnsupportedExportError(
                f"task {task!r}: the encoder has {model.config.block_adapter} block adapters from representation "
                "re-alignment, which a transformers block cannot express (block(x) + W x); export the model before "
                "representation re-alignment (after merging or head re-alignment), or publish the SimoModel"
            )
    return exporter


def export_state(model: Any, task: str) -> tuple[torch.nn.Module, Exporter]:
    """The task as a `target_class` instance holding the model's encoder and the task's head (strictly loaded)."""
    from transformers.initialization import no_init_weights

    exporter = check_exportable(model, task)
    spec = model.config.get_task(task)
    backbone = model.config.backbone_config
    config = exporter.build_config(spec, backbone, architectures=[exporter.target_class.__name__])
    plan = exporter.importer.plan(config, task, f"task {task!r}")
    state = model.state_dict()
    with no_init_weights():
        target = exporter.target_class(config)
    target.load_state_dict({source: state[simo] for simo, source in plan.key_map.items()}, strict=True)
    return target.eval(), exporter


def source_preprocessor(config: Any, task: str) -> dict[str, Any] | None:
    """The `preprocessor_config.json` the imported source of `task` shipped, as recorded at import
    (`config.sources[task]["preprocessor_config"]`); None for a task hf_simo trained or a source without one."""
    record = (getattr(config, "sources", None) or {}).get(task) or {}
    data = record.get("preprocessor_config") if isinstance(record, Mapping) else None
    return dict(data) if isinstance(data, Mapping) else None


def export_task(
    model: Any, task: str, output_dir: str | os.PathLike, *, image_processor: Any = None, overwrite: bool = False
) -> Path:
    """Write `task` of `model` as a transformers checkpoint folder (config.json, model.safetensors,
    preprocessor_config.json), atomically; refusals come before anything is written.

    The processor written: `image_processor`'s settings as a plain `DPTImageProcessor` when given; else the
    `preprocessor_config.json` of the task's imported source, as it was (import -> export gives it back); else one
    made from the model's encoder config (its `image_size` and `patch_size`, ImageNet normalisation:
    `make_image_processor`). No `Simo*` class is written: the folder loads without hf_simo.
    """
    from transformers import DPTImageProcessorPil

    from ..image_processing_simo import make_image_processor

    target, exporter = export_state(model, task)
    recorded = None if image_processor is not None else source_preprocessor(model.config, task)
    plain = None
    if recorded is None:
        processor = image_processor or make_image_processor(model.config)
        settings = {k: v for k, v in processor.to_dict().items() if not k.startswith(("image_processor_type", "_"))}
        plain = DPTImageProcessorPil(**settings)
    with atomic_folder(output_dir, overwrite=overwrite) as folder:
        target.save_pretrained(folder)
        if plain is None:
            text = json.dumps(recorded, indent=2, sort_keys=True) + "\n"
            (Path(folder) / PREPROCESSOR_NAME).write_text(text, encoding="utf-8")
        else:
            plain.save_pretrained(folder)
    logger.info("exported task %r as %s to %s", task, exporter.target_class.__name__, output_dir)
    return Path(output_dir)


__all__ = [
    "EXPORTERS",
    "EXPORTER_MODULES",
    "EXTENSION_POINT",
    "check_exportable",
    "export_state",
    "export_task",
    "source_preprocessor",
]

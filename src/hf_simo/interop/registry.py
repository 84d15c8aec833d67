"""The one place importers are listed, and how config.json picks one.

Extension point: a new source format is one module under `hf_simo/interop/importers/` defining `IMPORTER` (an
`hf_simo.interop.plan.Importer`), plus one line in `IMPORTER_MODULES` below. `architectures` are matched first (a
checkpoint says which class wrote it), then `model_type` (configs written without `architectures`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, UnsupportedFormatError
from .importers import depth_anything, dpt, encoder
from .plan import Importer, ImportPlan


IMPORTER_MODULES = (depth_anything, dpt, encoder)
IMPORTERS: dict[str, Importer] = {module.IMPORTER.name: module.IMPORTER for module in IMPORTER_MODULES}
EXTENSION_POINT = "hf_simo/interop/importers/<format>.py defining IMPORTER, listed in hf_simo.interop.registry"


def supported_formats() -> str:
    return "; ".join(f"{i.name}: {i.summary} (architectures {list(i.architectures)})" for i in IMPORTERS.values())


def find_importer(config: Mapping[str, Any], source: str) -> Importer | None:
    """The importer for a config.json (as a dict); None for hf_simo's own `simo` checkpoints (no import needed)."""
    model_type = config.get("model_type")
    if model_type == "simo":
        return None
    architectures = list(config.get("architectures") or [])
    for importer in IMPORTERS.values():
        if architectures and set(architectures) <= set(importer.architectures):
            return importer
    if not architectures:
        for importer in IMPORTERS.values():
            if model_type in importer.model_types:
                return importer
    what = f"architectures {architectures}" if architectures else f"model_type {model_type!r}"
    raise UnsupportedFormatError(
        f"{source} is a checkpoint with {what}, which hf_simo cannot import. Supported: hf_simo's own SimoModel "
        f"checkpoints (model_type 'simo'); {supported_formats()}. To add a format: {EXTENSION_POINT}"
    )


def read_config_dict(path: Path, source: str) -> dict[str, Any]:
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{source} has no config.json; expected a SimoModel or transformers checkpoint folder")
    try:
        return json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{source}: config.json is not valid JSON ({err})") from err


def import_plan(path: Path, task: str | None, source: str) -> ImportPlan | None:
    """The `ImportPlan` of the checkpoint folder `path` (None for a SimoModel folder); reads config.json only.

    `task` names the imported task (the user's name, e.g. `depth`); a task format without it is an error.
    """
    from transformers import AutoConfig

    importer = find_importer(read_config_dict(path, source), source)
    if importer is None:
        return None
    if task is None and importer.name != "encoder":
        raise CheckpointError(
            f"{source} is a transformers checkpoint ({importer.summary}); name the task it becomes: task='depth' in "
            "Python; on the "
            f"command line --task NAME (hf-simo evaluate) or NAME={source.split('@')[0]} in "
            "--task_checkpoints (merge, realign, relationships)"
        )
    return importer.plan(AutoConfig.from_pretrained(path), task or "", source)


__all__ = [
    "EXTENSION_POINT",
    "IMPORTERS",
    "IMPORTER_MODULES",
    "find_importer",
    "import_plan",
    "read_config_dict",
    "supported_formats",
]

"""A transformers checkpoint folder (DPT-DINOv2, Depth Anything) as a SimoModel config and state dict, for
`SimoModel.from_pretrained(repo, task=...)`; the merge engine reads the same sources lazily instead
(`hf_simo.merging.io.sources`).

The source's `preprocessor_config.json`, when it has one, is recorded with its provenance
(`config.sources[task]["preprocessor_config"]`, the file's JSON as is): how the head's inputs were prepared, which
`hf_simo.interop.export_task` writes back, so import -> export gives back the original processor too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from ..configuration_simo import SimoConfig
from ..errors import CheckpointError
from .registry import import_plan


PREPROCESSOR_NAME = "preprocessor_config.json"


def imported_model_state(
    path: Path, task: str | None, source: str, files: list[Path], allow_pickle: bool = False
) -> tuple[SimoConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """(SimoConfig, SimoModel state dict, provenance) of a transformers task checkpoint; nothing else is accepted
    here (a bare encoder has no task: use `SimoModel.from_backbone`)."""
    plan = import_plan(path, task, source)
    if plan is None:
        raise CheckpointError(
            f"{source} is a SimoModel checkpoint, whose tasks have their names: load it without task= / --task "
            "(tasks= / --tasks selects some of them)"
        )
    if not plan.tasks:
        raise CheckpointError(
            f"{source} is a bare encoder ({plan.source_class.__name__}) with no task to import; build a model on it "
            "with SimoModel.from_backbone(repo, tasks={...})"
        )
    if files:
        stored: dict[str, torch.Tensor] = {}
        for file in files:
            with safe_open(file, framework="pt") as handle:
                stored.update({key: handle.get_tensor(key) for key in handle.keys()})  # noqa: SIM118
    else:
        from ..merging.io.reader import load_pickle_weights  # only when the user allowed pickles

        stored = load_pickle_weights(path, source)
    state = {}
    for simo, (name, chunk) in plan.stored_names(stored, source).items():
        tensor = stored[name]
        state[simo] = tensor.chunk(2, dim=0)[chunk].contiguous() if chunk is not None else tensor
    config = SimoConfig(backbone_config=plan.backbone_config.to_dict(), tasks=plan.tasks)
    provenance: dict[str, Any] = {"format": plan.format, "architectures": [plan.source_class.__name__]}
    preprocessor = source_preprocessor_config(path, source)
    if preprocessor is not None:
        provenance["preprocessor_config"] = preprocessor
    return config, state, provenance


def source_preprocessor_config(path: Path, source: str) -> dict[str, Any] | None:
    """The JSON of the folder's `preprocessor_config.json` (None without one)."""
    file = Path(path) / PREPROCESSOR_NAME
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{source}: {PREPROCESSOR_NAME} is not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{source}: {PREPROCESSOR_NAME} holds a {type(data).__name__}, not a JSON object")
    return data


__all__ = ["PREPROCESSOR_NAME", "imported_model_state", "source_preprocessor_config"]

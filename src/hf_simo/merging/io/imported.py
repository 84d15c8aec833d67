"""A transformers checkpoint hf_simo imports (DPT-DINOv2, Depth Anything; `hf_simo.interop`) in the parts a merge
source has: encoder tensors under canonical names, head tensors under `heads.<task>.*`, a SimoConfig whose task spec
comes from the source. Nothing is read but the names in the weight headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ...configuration_simo import SimoConfig
from ...errors import CheckpointError
from ...interop.plan import ENCODER_PREFIX, ImportPlan
from .reader import TensorReader


class RenamedReader:
    """A `TensorReader` that also serves an imported checkpoint's head tensors under their SimoModel names
    (`heads.<task>.neck...` -> the stored `neck...`), so the merge engine reads them like a native head."""

    def __init__(self, reader: TensorReader, aliases: Mapping[str, str]):
        self.reader, self.aliases = reader, dict(aliases)
        self.source, self.owns_tensors = reader.source, reader.owns_tensors

    def keys(self) -> list[str]:
        return [*self.reader.keys(), *self.aliases]

    def info(self, key: str) -> tuple[torch.dtype, tuple[int, ...]]:
        return self.reader.info(self.aliases.get(key, key))

    def get(self, key: str) -> torch.Tensor:
        return self.reader.get(self.aliases.get(key, key))

    def close(self) -> None:
        self.reader.close()


def imported_parts(plan: ImportPlan, reader: TensorReader, role: str, label: str) -> dict[str, Any]:
    """The `Checkpoint` fields of an imported source (backbone_config, config, reader, encoder, heads)."""
    if role == "task" and not plan.tasks:
        raise CheckpointError(
            f"{label} is a plain Dinov2 encoder without task heads; task checkpoints must be SimoModel checkpoints "
            "(model_type 'simo') or transformers task models hf_simo imports (DPT-DINOv2, Depth Anything)"
        )
    names = plan.stored_names(reader.keys(), label)
    encoder = {k[len(ENCODER_PREFIX) :]: v for k, v in names.items() if k.startswith(ENCODER_PREFIX)}
    heads = {k: stored for k, (stored, _) in names.items() if k.startswith("heads.")} if role == "task" else {}
    config = SimoConfig(backbone_config=plan.backbone_config.to_dict(), tasks=plan.tasks)
    return {
        "backbone_config": plan.backbone_config,
        "config": config,
        "reader": RenamedReader(reader, heads) if heads else reader,
        "encoder": encoder,
        "heads": list(heads),
    }


__all__ = ["RenamedReader", "imported_parts"]

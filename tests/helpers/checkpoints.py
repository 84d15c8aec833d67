"""Builders shared by the merge tests: a tiny Dinov2 base and single-task SimoModel checkpoints fine-tuned from it
(`test_merge_engine.py::test_builders_make_fine_tuned_single_task_checkpoints` checks they have the intended shape).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import Dinov2Model

from helpers.tiny import TINY_TASKS, tiny_backbone_config
from hf_simo import SimoModel
from hf_simo.atomic import lock_path
from hf_simo.merging.io.sources import canonical_encoder_keys


TASKS = ("segmentation", "depth", "normals")
NOISE = 1e-3


def build_base(folder: str | os.PathLike, seed: int = 0, **overrides) -> Dinov2Model:
    torch.manual_seed(seed)
    base = Dinov2Model(tiny_backbone_config(**overrides)).eval()
    base.save_pretrained(folder)
    return base


def build_task(
    folder: str | os.PathLike,
    base: Dinov2Model,
    task: str,
    seed: int,
    noise: float = NOISE,
    base_name: str | None = None,
    spec: dict | None = None,
) -> SimoModel:
    """A single-task SimoModel whose encoder is `base` + N(0, noise^2) and whose head is random."""
    torch.manual_seed(seed)
    model = SimoModel.from_backbone(base, {task: spec or TINY_TASKS[task]}).eval()
    generator = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for parameter in model.dinov2.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * noise)
        for parameter in model.heads.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)
        for buffer in model.heads.buffers():
            if buffer.is_floating_point():
                buffer.add_(torch.rand(buffer.shape, generator=generator))
    model.config.base_model_name_or_path = base_name
    model.save_pretrained(folder)
    return model


def build_sources(root: str | os.PathLike, tasks=TASKS, record_base: bool = True) -> tuple[Path, list[Path]]:
    """`root/base` and `root/<task>` for each task (each records `root/base` as its base unless told not to)."""
    root = Path(root)
    base = build_base(root / "base")
    folders = []
    for index, task in enumerate(tasks):
        build_task(root / task, base, task, seed=index + 1, base_name=str(root / "base") if record_base else None)
        folders.append(root / task)
    return root / "base", folders


def encoder_state(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Encoder tensors of a SimoModel or Dinov2 folder, under their in-memory (transformers-5) names without the
    `dinov2.` prefix (transformers 5 saves Dinov2 attention weights under their transformers-4 names)."""
    state = load_file(Path(folder) / "model.safetensors")
    if any(k.startswith("dinov2.") for k in state):
        state = {k[len("dinov2.") :]: v for k, v in state.items() if k.startswith("dinov2.")}
    renamed = {}
    for key, value in state.items():
        (name, chunk), *rest = canonical_encoder_keys(key)
        assert chunk is None and not rest, "SwiGLU checkpoints are not used by these helpers"
        renamed[name] = value
    return renamed


def head_state(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(Path(folder) / "model.safetensors").items() if k.startswith("heads.")}


def rewrite_weights(folder: str | os.PathLike, edit) -> None:
    """Apply `edit(state_dict)` (in place) to a folder's model.safetensors."""
    path = Path(folder) / "model.safetensors"
    state = load_file(path)
    edit(state)
    save_file(state, path, metadata={"format": "pt"})


def leftovers(parent: str | os.PathLike, name: str) -> list[str]:
    """Anything a failed merge into `parent/name` may have left: the folder or its temporary siblings. The empty
    lock file `.<name>.lock` is not one: it stays on purpose (see `hf_simo.atomic`) and holds no data."""
    lock = lock_path(Path(parent) / name)
    assert not lock.exists() or lock.stat().st_size == 0
    return sorted(
        p.name for p in Path(parent).iterdir() if p != lock and (p.name == name or p.name.startswith(f".{name}."))
    )

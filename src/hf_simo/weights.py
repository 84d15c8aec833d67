"""Canonical tensor names for the encoder families, and the check of a checkpoint's tensors against its config.

transformers 5 renamed DINOv2's attention weights (`attention.attention.query` -> `attention.q_proj`, ...) and, to
stay loadable by older versions, `save_pretrained` writes the *old* names while the modules use the new ones
(DINOv2 and DINOv2-with-registers share that mapping; DINOv3 stores its blocks as `layer.*` for `model.layer.*`).
Any code that reads safetensors directly (the checkpoint check, the merge engine) compares canonical (new) names,
derived from transformers' own conversion mapping rather than a copy of it (`hf_simo.encoder_families` holds
DINOv3's one prefix rename, which transformers spells as an unanchored regex).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import torch

from .encoder_families import module_prefix_name
from .hub import CheckpointError, tensor_shapes


@functools.cache
def _dinov2_renamings() -> tuple[tuple[re.Pattern[str], str], ...]:
    from transformers.conversion_mapping import get_checkpoint_conversion_mapping
    from transformers.core_model_loading import WeightRenaming

    mapping = get_checkpoint_conversion_mapping("Dinov2Model") or []
    return tuple(
        (re.compile(re.escape(r.source_patterns[0])), r.target_patterns[0])
        for r in mapping
        if type(r) is WeightRenaming and len(r.source_patterns) == 1
    )


def canonical_key(key: str) -> str:
    """The transformers-5 module name of a (possibly legacy-named) encoder tensor name, bare or `dinov2.`-prefixed,
    in any encoder family; other names unchanged."""
    for pattern, target in _dinov2_renamings():
        key = pattern.sub(target, key)
    return module_prefix_name(key)


# The legacy SwiGLU `mlp.weights_in` stacks the gate and up projections on dim 0 (transformers' conversion mapping)
_SWIGLU_IN = ".mlp.weights_in."
_SWIGLU_OUT = (".mlp.gate_proj.", ".mlp.up_proj.")  # chunk(2, dim=0): gate first, as transformers converts it


def canonical_names(key: str) -> list[tuple[str, int | None]]:
    """The transformers-5 module name(s) of one stored DINOv2-family tensor, with the chunk each one takes: legacy
    attention names renamed; the legacy SwiGLU `mlp.weights_in` split into `gate_proj` (0) and `up_proj` (1)."""
    key = f".{canonical_key(key)}."
    if _SWIGLU_IN in key:
        return [(key.replace(_SWIGLU_IN, out)[1:-1], index) for index, out in enumerate(_SWIGLU_OUT)]
    return [(key[1:-1], None)]


def check_checkpoint_matches_config(build_model: Callable[[Any], Any], config: Any, files, source: str) -> None:
    """Compare the tensors in safetensors headers with those `build_model(config)` creates (on the meta device, no
    memory): every problem named by task. `build_model` is the model class, or `AutoModel.from_config`."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_model(config).state_dict().items()}
    found = {canonical_key(key): shape for key, shape in tensor_shapes(files, source).items()}

    def task_of(key: str) -> str | None:
        parts = key.split(".")
        return parts[1] if len(parts) > 2 and parts[0] == "heads" else None

    problems = []
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    for task in config.task_names:
        if any(task_of(k) == task for k in missing):
            problems.append(f"task {task!r} is in the config but its head has no weights in the checkpoint")
    extra_tasks = sorted({task_of(k) for k in unexpected if task_of(k) and task_of(k) not in config.tasks})
    if extra_tasks:
        problems.append(f"the checkpoint has head weights for task(s) {extra_tasks} that its config does not declare")
    partial = sorted({task_of(k) for k in unexpected if task_of(k) in config.tasks})
    if partial:
        problems.append(f"head(s) {partial} hold tensors their config does not build (different head type/options?)")
    encoder_missing = [k for k in missing if task_of(k) is None]
    if encoder_missing:
        problems.append(f"encoder weights missing: {encoder_missing[:5]}{' ...' if len(encoder_missing) > 5 else ''}")
    others = [k for k in unexpected if task_of(k) is None]
    if others:
        problems.append(f"unexpected weights: {others[:5]}{' ...' if len(others) > 5 else ''}")
    mismatched = [k for k in expected if k in found and found[k] != expected[k]]
    for key in mismatched[:5]:
        owner = f"task {task_of(key)!r}" if task_of(key) else "encoder"
        problems.append(
            f"{owner}: {key} has shape {list(found[key])} in the weights, the config builds {list(expected[key])}"
        )
    if problems:
        raise CheckpointError(f"{source} does not match its config.json: " + "; ".join(problems))


__all__ = ["canonical_key", "canonical_names", "check_checkpoint_matches_config"]

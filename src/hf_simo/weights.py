"""Canonical tensor names for DINOv2 encoders.

transformers 5 renamed DINOv2's attention weights (`attention.attention.query` -> `attention.q_proj`, ...) and, to
stay loadable by older versions, `save_pretrained` writes the *old* names while the modules use the new ones. Any
code that reads safetensors directly (the checkpoint check, the merge engine) compares canonical (new) names,
derived from transformers' own conversion mapping rather than a copy of it.
"""

from __future__ import annotations

import functools
import re


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
    """The transformers-5 module name of a (possibly legacy-named) DINOv2 tensor name; other names unchanged."""
    for pattern, target in _dinov2_renamings():
        key = pattern.sub(target, key)
    return key


__all__ = ["canonical_key"]

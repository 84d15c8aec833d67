"""The registry of merging methods: one `SPEC` per family file, listed once here (a new method = one file + one line
in `METHODS`), and the functions the merges call by method name.

`merge_task_vectors(method, options, task_vectors, ...)` is the method's own `merge`; `final_scale` is the factor
applied to tau_MTL (alpha, times LiNeS' layer scale).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ...errors import MergeOptionError
from .base import MethodSpec
from .breadcrumbs import SPEC as BREADCRUMBS
from .common import TaskVectors, Weight
from .dare import SPEC as DARE
from .lines import SPEC as LINES
from .lines import lines_scales
from .magnitude import SPEC as MAGNITUDE
from .tall import CONSENSUS, TALL_MASK
from .task_arithmetic import SPEC as TASK_ARITHMETIC
from .ties import SPEC as TIES


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        TASK_ARITHMETIC,
        TIES,
        MAGNITUDE,
        DARE,
        BREADCRUMBS,
        CONSENSUS,
        TALL_MASK,
        LINES,
    )
}
METHOD_ALIASES = {"ta": "task_arithmetic", "task-arithmetic": "task_arithmetic", "sum": "task_arithmetic"}
TIES_ONLY_OPTIONS = ("density", "scope", "aggregate")  # of a method on a TIES base


def get_method(name: str) -> MethodSpec:
    key = METHOD_ALIASES.get(name, name)
    if key not in METHODS:
        raise MergeOptionError(f"unknown merging method {name!r}; available: {sorted(METHODS)}")
    return METHODS[key]


def resolve_method(name: str, options: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Canonical method name and its options with defaults filled in, validated (MergeOptionError otherwise)."""
    spec = get_method(name)
    resolved = spec.resolve(options)
    # options of the TIES base only matter when the base is TIES: drop them otherwise so configs stay honest
    if spec.ties_base and resolved["base_method"] == "task_arithmetic":
        for unused in TIES_ONLY_OPTIONS:
            if options and unused in options:
                raise MergeOptionError(f"option {unused!r} of method {spec.name!r} applies to base_method='ties' only")
            resolved.pop(unused)
    return spec.name, resolved


def trim_scope(method: str, options: Mapping[str, Any]) -> str | None:
    """'global' or 'tensor' when the method trims by magnitude threshold, None otherwise."""
    return get_method(method).trim_scope(options)


def uses_sign_election(method: str, options: Mapping[str, Any]) -> bool:
    return get_method(method).uses_sign_election(options)


def validate_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        raise MergeOptionError(f"alpha must be a finite number >= 0, got {alpha!r}")
    return float(alpha)


def merge_task_vectors(
    method: str,
    options: Mapping[str, Any],
    task_vectors: TaskVectors,
    weights: Sequence[Weight] | None = None,
    *,
    key: str = "",
    thresholds: Sequence[float | None] | None = None,
    majority: float | None = None,
    tasks: Sequence[str] | None = None,
) -> torch.Tensor:
    """tau_MTL for one scope (a tensor, or the flattened encoder) with a resolved method and options.

    `key` (the canonical tensor name) and `tasks` (the task names) key DARE's drop masks. For `lines` this is the base method's tau_MTL; the layer scaling is applied by
    the caller, per coefficient group (see `final_scale`).
    """
    if method not in METHODS:
        raise MergeOptionError(f"unknown merging method {method!r}")
    spec = METHODS[method]
    return spec.merge(task_vectors, weights, options, key=key, thresholds=thresholds, majority=majority, tasks=tasks)


def final_scale(
    method: str, options: Mapping[str, Any], alpha: float, group: int, num_layers: int, lines_alpha: float | None
) -> float:
    """The factor applied to tau_MTL for a parameter of coefficient group `group`: alpha, times LiNeS' layer scale."""
    if method != "lines":
        return alpha
    return alpha * lines_scales(num_layers, lines_alpha, options["beta"])[group]


__all__ = [
    "METHODS",
    "METHOD_ALIASES",
    "final_scale",
    "get_method",
    "merge_task_vectors",
    "resolve_method",
    "trim_scope",
    "uses_sign_election",
    "validate_alpha",
]

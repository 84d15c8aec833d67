"""What an importer returns: the SimoModel a source checkpoint becomes, and which source tensor fills which tensor.

An importer never reads weights. It translates config.json into a SimoModel encoder config and task specs, and
states a one-to-one name map between the SimoModel state dict and the source model's state dict (module names,
taken from the source class built on the meta device). The I/O layer maps the names stored in the file onto module
names with transformers' own conversion mapping (`hf_simo.weights.canonical_names`) and reads lazily, so the merge
engine streams an imported source like a native one; an exporter applies the same map backwards, so import followed
by export gives back every original tensor bit for bit.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import PreTrainedConfig, PreTrainedModel

from ..encoder_families import ENCODER_PREFIX  # the SimoModel attribute of the encoder, every family
from ..errors import CheckpointError
from ..weights import canonical_names


# Fields transformers' backbones read but a bare encoder does not: they move into the task spec (layers, layernorm).
BACKBONE_ONLY_FIELDS = (
    "out_features",
    "_out_features",
    "out_indices",
    "_out_indices",
    "stage_names",
    "apply_layernorm",
    "reshape_hidden_states",
)


@dataclass
class ImportPlan:
    """A source checkpoint as a SimoModel.

    Args:
        format: the importer's name (`depth_anything`, `dpt`, `encoder`).
        source_class: the transformers class the checkpoint belongs to.
        source_config: the source's transformers config.
        backbone_config: the SimoModel encoder config (backbone-only fields removed).
        tasks: task name -> task spec ({} for a plain encoder, theta_0).
        key_map: SimoModel state-dict name -> source state-dict (module) name, one to one.
    """

    format: str
    source_class: type[PreTrainedModel]
    source_config: PreTrainedConfig
    backbone_config: PreTrainedConfig
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    key_map: dict[str, str] = field(default_factory=dict)

    def stored_names(self, stored_keys: Iterable[str], source: str) -> dict[str, tuple[str, int | None]]:
        """SimoModel name -> (stored tensor name, chunk or None) for the tensors of a file, checked one to one:
        a stored tensor no SimoModel tensor takes, or a SimoModel tensor the file lacks, is an error naming it."""
        by_module = {module: simo for simo, module in self.key_map.items()}
        found: dict[str, tuple[str, int | None]] = {}
        unexpected = []
        for stored in stored_keys:
            for module, chunk in canonical_names(stored):
                if module in by_module:
                    found[by_module[module]] = (stored, chunk)
                else:
                    unexpected.append(stored)
        missing = [simo for simo, module in self.key_map.items() if simo not in found]
        problems = []
        if missing:
            names = [self.key_map[k] for k in missing[:5]]
            problems.append(f"missing {len(missing)} tensor(s) its config builds: {names}")
        if unexpected:
            problems.append(f"{len(unexpected)} tensor(s) its config does not build: {unexpected[:5]}")
        if problems:
            raise CheckpointError(
                f"{source} ({self.source_class.__name__}) does not match its config.json: " + "; ".join(problems)
            )
        return found


@dataclass(frozen=True)
class Importer:
    """One source format: which config.json it claims and how it becomes a SimoModel.

    `plan(config, task, source)` validates the source's transformers config (errors name `source` and the fix) and
    returns the `ImportPlan`; it reads no weights. One module per format under `hf_simo/interop/importers/` defines
    `IMPORTER`; `hf_simo.interop.registry` lists the modules.
    """

    name: str
    summary: str
    architectures: tuple[str, ...]
    model_types: tuple[str, ...]
    plan: Callable[[PreTrainedConfig, str, str], ImportPlan]


@dataclass(frozen=True)
class Exporter:
    """One target transformers class: which head type it takes, the config it needs (the same function the head
    builds its modules from) and the importer whose name map, applied backwards, names the exported tensors."""

    head: str
    target_class: type[PreTrainedModel]
    build_config: Callable[..., PreTrainedConfig]
    importer: Importer
    kinds: tuple[str, ...] = ("depth", "disparity")


def encoder_config(backbone: PreTrainedConfig) -> PreTrainedConfig:
    """The backbone config as a bare encoder config: same class, backbone-only fields back to their defaults."""
    data = copy.deepcopy(backbone).to_dict()
    for key in BACKBONE_ONLY_FIELDS:
        data.pop(key, None)
    return type(backbone).from_dict(data)


def module_names(model_class: type[PreTrainedModel], config: PreTrainedConfig) -> list[str]:
    """The state-dict names of `model_class(config)`, built on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        return list(model_class(copy.deepcopy(config)).state_dict())


def prefix_key_map(source_keys: Iterable[str], rules: Mapping[str, str], *, source: str) -> dict[str, str]:
    """SimoModel name -> source name by replacing the first matching source prefix (`rules`: source -> SimoModel).

    A source tensor no rule covers is an error: silently dropping weights would make the import lossy.
    """
    key_map: dict[str, str] = {}
    unmapped = []
    for key in source_keys:
        for source_prefix, simo_prefix in rules.items():
            if key.startswith(source_prefix):
                key_map[simo_prefix + key[len(source_prefix) :]] = key
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise CheckpointError(
            f"{source}: tensors {unmapped[:5]} belong to no part hf_simo imports (known: {sorted(rules)})"
        )
    return key_map


__all__ = [
    "BACKBONE_ONLY_FIELDS",
    "ENCODER_PREFIX",
    "Exporter",
    "ImportPlan",
    "Importer",
    "encoder_config",
    "module_names",
    "prefix_key_map",
]

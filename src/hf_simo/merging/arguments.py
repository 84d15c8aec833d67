"""The merge options of every verb and recipe that merges (``hf-simo merge``, ``hf-simo realign``, ``hf-simo
relationships`` for its sources), in the one vocabulary of issue 11 (mergekit's names for merging concepts,
transformers' for the rest). Plain dataclasses, no torch: `--help` stays cheap.

- `SourceArguments`: which checkpoints (``--task_checkpoints [NAME=]SOURCE[@REV] ...``, ``--base_model``) and how far
  from the base a task encoder may be (``--max_relative_distance``, ``--allow_distant``);
- `MergeMethodArguments`: the method and its options, flat (``--density 0.2``) or as JSON (``--merge_options``);
- `MergeOutputArguments`: the merged folder (``--output_dir``, ``--dtype``, ``--max_shard_size``,
  ``--overwrite_output_dir``, ``--wait_for_lock``, ``--push_to_hub``; the Hub repo is `hf_simo.hub.PushOptions`).

`DEFAULT_ALPHA_GRID` is the one α grid searched on validation when α is not given.

``hf-simo merge`` and ``recipes/merge.py`` are generated from `SourceArguments`, `MergeMethodArguments`,
`MergeOutputArguments` and the Hub carriers (`hf_simo.cli.merge`); `hf_simo.merging.merge_from_arguments` runs them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import OptionError
from ..utils.fields import json_mapping, option


DEFAULT_ALPHA_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
DEFAULT_MAX_RELATIVE_DISTANCE = 1.0  # the provenance check's threshold (`hf_simo.merging.checks.check_fine_tuned`)
# flat method options: field -> the option name the merging methods take (`hf_simo.merging.merge_methods.METHODS`)
MERGE_METHOD_OPTIONS = {
    "density": "density",
    "scope": "scope",
    "aggregate": "aggregate",
    "dare_seed": "seed",
    "rescale": "rescale",
    "sign_election": "sign_election",
    "gamma": "gamma",
    "tall_lambda": "tall_lambda",
    "min_agreement": "min_agreement",
    "base_method": "base_method",
    "beta": "beta",
    "lines_alpha": "lines_alpha",
}


@dataclass
class SourceArguments:
    """The single-task checkpoints to merge and their common base θ_0."""

    task_checkpoints: list[str] | None = option(
        None,
        "Single-task SimoModel checkpoints, [NAME=]SOURCE[@REVISION] (Hub ids or folders); NAME= renames the task. "
        "One or more values, and the option may be repeated.",
    )
    base_model: str | None = option(
        None, "θ_0, ORG/NAME[@REVISION] or a folder (default: the base recorded in the checkpoints)."
    )
    max_relative_distance: float | None = option(
        DEFAULT_MAX_RELATIVE_DISTANCE,
        "Refuse task encoders with ||θ_t - θ_0|| / ||θ_0|| above this (a checkpoint not fine-tuned from the base).",
    )
    allow_distant: bool = option(False, "Only warn about task encoders far from the base (no distance limit).")

    def __post_init__(self) -> None:
        value = self.max_relative_distance
        if value is not None and (isinstance(value, bool) or not value > 0 or not math.isfinite(value)):
            raise OptionError(f"--max_relative_distance must be a positive number, got {value!r}")

    @property
    def distance_limit(self) -> float | None:
        """The limit the merge applies: None (warn only) with --allow_distant."""
        return None if self.allow_distant else self.max_relative_distance


@dataclass
class MergeMethodArguments:
    """The merging method, α and the method's options (None: the method's default)."""

    merge_method: str = option(
        "task_arithmetic", "task_arithmetic, ties, magnitude, dare, breadcrumbs, consensus or lines."
    )
    alpha: float | None = option(
        None, "θ = θ_0 + α·merge(τ_1..τ_T). Default: 1.0 for a merge, tuned on validation by re-alignment."
    )
    density: float | None = option(None, "Fraction of each task vector kept, in (0, 1] (ties, magnitude, dare, ...).")
    scope: str | None = option(None, "Magnitude trim over the whole encoder (global) or per tensor.")
    aggregate: str | None = option(None, "Disjoint merge aggregate: mean or sum (ties).")
    dare_seed: int | None = option(None, "DARE: seed of the random drop mask.")
    rescale: bool | None = option(None, "DARE: rescale the kept entries.")
    sign_election: bool | None = option(None, "DARE: TIES sign election (DARE-TIES).")
    gamma: float | None = option(None, "Breadcrumbs: fraction of the largest magnitudes dropped.")
    tall_lambda: float | None = option(None, "Consensus: TALL mask λ.")
    min_agreement: int | None = option(None, "Consensus: masks an entry needs (default 2).")
    base_method: str | None = option(None, "Consensus / LiNeS base method: task_arithmetic or ties.")
    beta: float | None = option(None, "LiNeS: depth scaling β.")
    lines_alpha: float | None = option(None, "LiNeS: α (default: automatic).")
    coefficients: str | None = option(None, "Per-task (per-layer) coefficients: a JSON file or inline JSON.")
    merge_options: str | None = option(
        None, "Method options as JSON (a mapping in YAML), e.g. '{\"density\": 0.2}'; or use the flat options."
    )

    def __post_init__(self) -> None:
        if self.alpha is not None and not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise OptionError(f"--alpha must be a finite number >= 0, got {self.alpha}")

    def method_options(self) -> dict[str, Any]:
        """The method's options (the methods' names: ``dare_seed`` is ``seed``): the flat ones given, plus
        ``--merge_options``; one given both ways is an error."""
        flat = {
            key: getattr(self, name) for name, key in MERGE_METHOD_OPTIONS.items() if getattr(self, name) is not None
        }
        extra = json_mapping(self.merge_options, "--merge_options")
        both = sorted(set(flat) & set(extra))
        if both:
            raise OptionError(f"{both} given both as options and in --merge_options; give each once")
        return {**flat, **extra}


@dataclass
class MergeOutputArguments:
    """Where and how the merged folder is written (and whether it is pushed: the repo is `PushOptions`)."""

    output_dir: str | None = option(None, "Folder to write the merged SimoModel to.")
    dtype: str = option("auto", "Output dtype: auto, float32, float16 or bfloat16.")
    max_shard_size: str = option("5GB", "safetensors shard size (save_pretrained's spelling).")
    overwrite_output_dir: bool = option(False, "Replace an existing output folder.")
    wait_for_lock: bool = option(False, "Wait for another process writing the same output instead of failing.")
    push_to_hub: bool = option(False, "Upload the merged folder to the Hub repo --hub_model_id.")
    num_threads: int | None = option(None, "Torch threads for the merge (default: all cores); same output for any.")


__all__ = [
    "DEFAULT_ALPHA_GRID",
    "DEFAULT_MAX_RELATIVE_DISTANCE",
    "MERGE_METHOD_OPTIONS",
    "MergeMethodArguments",
    "MergeOutputArguments",
    "SourceArguments",
]

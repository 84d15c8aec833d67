"""Rendering and writing model cards (I/O): the template shipped as package data, the README written atomically, the
parameter counts read from the weights' safetensors headers (so cards never build a model: `hf_simo.modeling_simo`
imports this package, not the other way round)."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard

from ..atomic import atomic_write_text
from ..configuration_simo import SimoConfig
from ..errors import CheckpointError, NotFoundError
from ..hub import safetensors_files, tensor_shapes
from .data import SimoCardData
from .origin import UNSIGNED, card_needs_writing, content_digest


TEMPLATE_NAME = "simo_model_card.md.jinja"
# the keyword arguments of `build_model_card` besides `repo_id`: the card's own fields
# BatchNorm's persistent buffers: saved with the weights, but not parameters
BUFFER_NAMES = frozenset({"running_mean", "running_var", "num_batches_tracked"})
CARD_FIELDS = frozenset(f.name for f in dataclasses.fields(SimoCardData)) - {"config", "model_id"}


def template_path(name: str = TEMPLATE_NAME) -> Path:
    """The card template: from the installed `hf_simo.model_cards` package, else the repository's `model_cards/`."""
    try:
        from importlib.resources import files

        candidate = files("hf_simo.model_cards") / name
        if candidate.is_file():
            return Path(str(candidate))
    except ModuleNotFoundError:  # an editable install that maps only src/ (the folder lives at the repo top)
        pass
    fallback = Path(__file__).resolve().parents[3] / "model_cards" / name
    if fallback.is_file():
        return fallback
    raise FileNotFoundError(
        f"model card template {name!r} not found in the hf_simo.model_cards package nor in {fallback.parent}; "
        "reinstall hf_simo (the templates ship as package data)"
    )


def load_card_config(model_or_config: Any) -> SimoConfig:
    """The `SimoConfig` of a model, a config or a saved folder (its config.json)."""
    if isinstance(model_or_config, SimoConfig):
        return model_or_config
    config = getattr(model_or_config, "config", None)
    if isinstance(config, SimoConfig):
        return config
    if isinstance(model_or_config, (str, os.PathLike)):
        folder = Path(model_or_config)
        if not (folder / "config.json").is_file():
            raise NotFoundError(f"{folder} has no config.json; pass a SimoModel, a SimoConfig or a model folder")
        loaded = SimoConfig.from_pretrained(folder)
        if not isinstance(loaded, SimoConfig):
            raise CheckpointError(f"{folder}/config.json is not a SimoModel config (model_type 'simo')")
        return loaded
    raise TypeError(f"expected a SimoModel, a SimoConfig or a model folder, got {type(model_or_config).__name__}")


def parameter_counts(source: Any) -> dict[str, int]:
    """``{"encoder": n, "head:<task>": n}``: counted on a model's modules, or read from a saved folder's safetensors
    headers (no weights loaded, no model built); {} for a config alone or a folder without readable weights."""
    encoder, heads = getattr(source, "dinov2", None), getattr(source, "heads", None)
    if encoder is not None and heads is not None:
        counts = {"encoder": sum(p.numel() for p in encoder.parameters())}
        counts.update({f"head:{name}": sum(p.numel() for p in head.parameters()) for name, head in heads.items()})
        return counts
    if not isinstance(source, (str, os.PathLike)) or not Path(source).is_dir():
        return {}
    try:
        shapes = tensor_shapes(safetensors_files(source))
    except CheckpointError:
        return {}
    counts: dict[str, int] = {}
    for key, shape in shapes.items():
        parts = key.split(".")
        if parts[-1] in BUFFER_NAMES:
            continue
        if parts[0] == "dinov2":
            group = "encoder"
        elif parts[0] == "heads" and len(parts) > 2:
            group = f"head:{parts[1]}"
        else:
            continue
        counts[group] = counts.get(group, 0) + math.prod(shape)
    return counts


def build_model_card(model_or_config: Any, *, repo_id: str | None = None, **card_fields: Any) -> ModelCard:
    """The model card of a `SimoModel` (or its config, or a saved folder), rendered from the package template.

    `repo_id` is the Hub repo the usage snippet names; `card_fields` are `SimoCardData`'s (eval_results,
    results_table, results_baseline, dataset_name, dataset_id, dataset_split, dataset_revision, model_name, license,
    tags, description, parameter_counts). Without `eval_results` and `results_table` the card has no evaluation
    section and no `model-index`. Parameter counts come from the model, or a folder's safetensors headers.
    """
    config = load_card_config(model_or_config)
    unknown = sorted(set(card_fields) - CARD_FIELDS)
    if unknown:
        raise TypeError(
            f"build_model_card() got unexpected keyword argument(s) {unknown}; known: {sorted(CARD_FIELDS)}"
        )
    card_fields.setdefault("parameter_counts", parameter_counts(model_or_config))
    card_data = SimoCardData(config=config, model_id=repo_id, **card_fields)
    card = ModelCard.from_template(card_data, template_path=str(template_path()))
    text = str(card)
    return ModelCard(text.replace(UNSIGNED, f"content {content_digest(text)}", 1))


def write_model_card(folder: str | os.PathLike, model_or_config: Any = None, **kwargs: Any) -> Path:
    """Render the card (see `build_model_card`) and write `<folder>/README.md` atomically; returns its path.

    `model_or_config` defaults to the folder's own `config.json`; parameter counts come from the model when one is
    given, else from the folder's weights.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFoundError(f"{folder} is not a folder; save the model first (model.save_pretrained(folder))")
    source = folder if model_or_config is None else model_or_config
    kwargs.setdefault("parameter_counts", parameter_counts(source) or parameter_counts(folder))
    card = build_model_card(source, **kwargs)
    return atomic_write_text(folder / "README.md", str(card))


def refresh_model_card(folder: str | os.PathLike, config: SimoConfig | None = None, **kwargs: Any) -> bool:
    """Write hf_simo's card into `folder` when `card_needs_writing`; True if it was written. `kwargs` go to
    `build_model_card` (repo_id, eval_results, dataset_name, tags, ...)."""
    readme = Path(folder) / "README.md"
    text = readme.read_text(encoding="utf-8", errors="replace") if readme.is_file() else None
    config = load_card_config(folder if config is None else config)
    if not card_needs_writing(text, config):
        return False
    write_model_card(folder, config, **kwargs)
    return True


__all__ = [
    "CARD_FIELDS",
    "TEMPLATE_NAME",
    "build_model_card",
    "load_card_config",
    "parameter_counts",
    "refresh_model_card",
    "template_path",
    "write_model_card",
]

"""What a saved model folder must hold before it is published, and which of its files a push commits (reads the
folder, its config and its safetensors headers; no network). `hf_simo.publishing` runs these checks first."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import ModelCard
from huggingface_hub.utils import filter_repo_objects

from .configuration_simo import SimoConfig
from .encoder_families import ENCODER_FAMILIES
from .errors import PublishError
from .hub import PICKLE_PATTERNS, CheckpointError, safetensors_files
from .weights import check_checkpoint_matches_config


REQUIRED_FILES = ("config.json", "preprocessor_config.json", "README.md")
IGNORE_PATTERNS = (
    ".*",  # hidden files and folders at the top: .git, .cache, editor files, our atomic-write temporaries
    "*/.*",
    "__pycache__/*",
    "*/__pycache__/*",
    "*.tmp",
    "*.lock",
)
PICKLE_FILE_PATTERNS = (*PICKLE_PATTERNS, "*.pkl", "*.pickle")


def validate_model_folder(folder: str | os.PathLike, *, card_pending: bool = False) -> SimoConfig | None:
    """Check that `folder` is a complete `SimoModel` folder (config, weights, image processor, card) and return its
    config, or a DINOv2 encoder folder (config and weights; returns None). Every problem is reported at once.
    `card_pending`: the README will be (re)written before the upload (a dry run), so it is not checked."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"cannot push {folder}: not a folder (save the model with model.save_pretrained(folder))")
    problems: list[str] = []
    config: SimoConfig | None = None
    if not (folder / "config.json").is_file():
        problems.append("config.json is missing (save the model with model.save_pretrained(folder))")
    else:
        try:
            model_type = json.loads((folder / "config.json").read_text()).get("model_type")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
            model_type = None
            problems.append(f"config.json is not valid JSON ({err})")
        else:
            if model_type in ENCODER_FAMILIES:  # a pre-trained encoder (θ_0): config and safetensors are all it needs
                try:
                    safetensors_files(folder, source=str(folder))
                except CheckpointError as err:
                    raise PublishError(f"cannot push {folder}: {_one_line(err)}") from err
                return None
            if model_type != "simo":
                problems.append(
                    f"config.json is a {model_type!r} config, not a SimoModel (model_type 'simo') or an encoder "
                    f"({', '.join(repr(t) for t in ENCODER_FAMILIES)})"
                )
            else:
                try:
                    config = SimoConfig.from_pretrained(folder)
                except Exception as err:  # noqa: BLE001 - any config error is reported, not raised raw
                    problems.append(f"config.json is not a valid SimoConfig ({_one_line(err)})")
    try:
        weights = safetensors_files(folder, source=str(folder))
    except CheckpointError as err:
        problems.append(_one_line(err))
    else:
        if config is not None:
            from transformers import AutoModel  # the registered SimoModel, without importing the modeling module

            try:
                check_checkpoint_matches_config(AutoModel.from_config, config, weights, str(folder))
            except CheckpointError as err:
                problems.append(_one_line(err))
    processor = folder / "preprocessor_config.json"
    if not processor.is_file():
        problems.append(
            "preprocessor_config.json is missing (SimoModel.save_pretrained writes it; or "
            "hf_simo.make_image_processor(config).save_pretrained(folder))"
        )
    else:
        try:
            json.loads(processor.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            problems.append(f"preprocessor_config.json is not valid JSON ({err})")
    readme = folder / "README.md"
    if card_pending:
        pass
    elif not readme.is_file():
        problems.append("README.md is missing (write the model card with hf_simo.cards.write_model_card(folder))")
    else:
        try:
            card = ModelCard.load(readme)
        except Exception as err:  # noqa: BLE001 - invalid YAML or model-index
            problems.append(f"README.md metadata does not parse ({_one_line(err)})")
        else:
            if not card.data.to_dict():
                problems.append(
                    "README.md has no metadata block; write it with hf_simo.cards.write_model_card(folder)"
                )
    if problems:
        raise PublishError(f"cannot push {folder}: " + "; ".join(problems))
    return config


def files_to_push(folder: str | os.PathLike, allow_patterns: Sequence[str] | str | None = None) -> list[str]:
    """Relative paths (POSIX) of the files one push commits, sorted.

    Everything in the folder except hidden files/folders, caches, temporaries and pickle files (hf_simo publishes
    safetensors only; skipped pickles are reported with a warning), restricted to `allow_patterns` when given.
    """
    folder = Path(folder)
    relative = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    kept = list(filter_repo_objects(relative, allow_patterns=allow_patterns, ignore_patterns=list(IGNORE_PATTERNS)))
    pickles = list(filter_repo_objects(kept, allow_patterns=list(PICKLE_FILE_PATTERNS)))
    if pickles:
        warnings.warn(
            f"not pushing pickle file(s) {pickles}: hf_simo publishes safetensors only (unpickling runs code)",
            stacklevel=2,
        )
    return [f for f in kept if f not in set(pickles)]


def kept_by_patterns(allow_patterns: Sequence[str] | str | None) -> list[str]:
    """Which of the required files `allow_patterns` keeps (whether or not they exist yet)."""
    return list(filter_repo_objects(list(REQUIRED_FILES), allow_patterns=allow_patterns))


def _one_line(err: object) -> str:
    return " ".join(str(err).split())


__all__ = [
    "IGNORE_PATTERNS",
    "PICKLE_FILE_PATTERNS",
    "REQUIRED_FILES",
    "files_to_push",
    "kept_by_patterns",
    "validate_model_folder",
]

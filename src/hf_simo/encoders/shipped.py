"""Encoders shipped inside the package, loaded through the normal `from_pretrained` path.

`embedded/` is θ_0 of the embedded benchmark: a small DINOv2 (a `Dinov2Model` folder, `config.json` +
`model.safetensors`) pre-trained by `recipes/pretrain_encoder.py` (SimMIM) on the benchmark's pre-training set
(`hf_simo.data.load_pretraining_images`: larger and more varied than the tasks' training data), with its provenance
(`provenance.json`: recipe, arguments, git commit, data seed, budget) and loss curve (`loss_curve.jsonl`,
`loss_curve.png`). The demo and the training recipes fine-tune from it unless given `--model_name_or_path` or
`--pretrain_encoder`. `recipes/ship_encoder.py` turns a finished pre-training run into this folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import NotFoundError


SHIPPED_ENCODER = "embedded"
PROVENANCE_NAME = "provenance.json"
_ROOT = Path(__file__).resolve().parent  # the package folder: embedded/ lies beside this module


class ShippedEncoderMissingError(NotFoundError):
    """The package was installed without its encoder weights."""


def shipped_encoder_path(name: str = SHIPPED_ENCODER, *, check: bool = True) -> Path:
    """The folder of a shipped encoder (what `Dinov2Model.from_pretrained` / `SimoModel.from_backbone` take);
    `check=False` returns where it belongs even if it is not there."""
    folder = _ROOT / name
    if check and not ((folder / "config.json").is_file() and (folder / "model.safetensors").is_file()):
        raise ShippedEncoderMissingError(
            f"the shipped encoder {name!r} is missing from this installation ({folder}); reinstall hf_simo, or pass "
            "--model_name_or_path <a DINOv2> or --pretrain_encoder to pre-train one"
        )
    return folder


def shipped_encoder_provenance(name: str = SHIPPED_ENCODER) -> dict[str, Any]:
    """How the shipped encoder was made (recipe, arguments, git commit, data seed, budget, final losses)."""
    return json.loads((shipped_encoder_path(name) / PROVENANCE_NAME).read_text())


def shipped_encoder_digest(name: str = SHIPPED_ENCODER) -> str:
    """SHA-256 (16 hex digits) of the shipped weights: training runs record it, so a new encoder is a new run."""
    digest = hashlib.sha256((shipped_encoder_path(name) / "model.safetensors").read_bytes()).hexdigest()
    return digest[:16]


__all__ = [
    "PROVENANCE_NAME",
    "SHIPPED_ENCODER",
    "ShippedEncoderMissingError",
    "shipped_encoder_digest",
    "shipped_encoder_path",
    "shipped_encoder_provenance",
]

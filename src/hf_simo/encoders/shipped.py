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
import os
import re
from pathlib import Path
from typing import Any

from ..errors import NotFoundError
from ..version import __version__


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
    return _weights_digest(shipped_encoder_path(name))


def _weights_digest(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()[:16]


def shipped_encoder_identity(name_or_path: Any) -> dict[str, Any] | None:
    """What a model card says of θ_0 when it is an encoder shipped with hf_simo, else None (a Hub id, any other
    folder, a path that is not there).

    Returns ``{"name", "digest", "provisional", "version"}``: the encoder's name in `hf_simo.encoders`, the digest of
    its weights (`shipped_encoder_digest`'s, the one training runs record), whether its `provenance.json` marks it
    provisional (None if it has none) and the hf_simo version that ships it. A config records θ_0 as an absolute
    path, so the folder is recognised by place: this installation's `hf_simo/encoders/<name>`, or another
    installation's (`.../hf_simo/encoders/<name>` with its `provenance.json`, e.g. a run made from another venv),
    and digest and provenance are read from that folder, not from this installation's copy.
    """
    if not isinstance(name_or_path, (str, os.PathLike)) or not os.fspath(name_or_path):
        return None
    folder = Path(name_or_path).expanduser().resolve()
    if not (folder / "model.safetensors").is_file():
        return None
    provenance_file = folder / PROVENANCE_NAME
    if folder.parent == _ROOT:
        version: str | None = __version__
    elif folder.parent.name == "encoders" and folder.parent.parent.name == "hf_simo" and provenance_file.is_file():
        version = _installed_version(folder.parent.parent)
    else:
        return None
    try:
        provisional = bool(json.loads(provenance_file.read_text()).get("provisional", False))
    except (OSError, ValueError, AttributeError):  # no provenance, or not a JSON object: say nothing about it
        provisional = None
    return {"name": folder.name, "digest": _weights_digest(folder), "provisional": provisional, "version": version}


def _installed_version(package: Path) -> str | None:
    """The version another installation of hf_simo declares (its `version.py`, read, not imported)."""
    try:
        found = re.search(r"^__version__ = [\"']([^\"']+)[\"']", (package / "version.py").read_text(), re.M)
    except OSError:
        return None
    return found.group(1) if found else None


__all__ = [
    "PROVENANCE_NAME",
    "SHIPPED_ENCODER",
    "ShippedEncoderMissingError",
    "shipped_encoder_digest",
    "shipped_encoder_identity",
    "shipped_encoder_path",
    "shipped_encoder_provenance",
]

"""Which README hf_simo may rewrite: an HTML comment under the front matter of every card hf_simo writes names the
config the card describes and a digest of the card, so a card edited since is recognised as the user's (pure)."""

from __future__ import annotations

import hashlib
import json
import re

import yaml

from ..configuration_simo import SimoConfig


# An HTML comment (invisible on the Hub) under the front matter of every card hf_simo writes: the config the card
# describes, and a digest of the card itself, so a card edited since is recognised as the user's.
_MARKER = re.compile(r"<!-- hf_simo card: config ([0-9a-f]{16}), content ([0-9a-f]{16}) -->\n?")
UNSIGNED = "content 0000000000000000"
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n(.*)\Z", re.S)
# The sentence transformers' `create_and_tag_model_card` writes into its generic card.
TRANSFORMERS_GENERIC_TEXT = "This is the model card of a 🤗 transformers model that has been pushed on the Hub"


def config_fingerprint(config: SimoConfig) -> str:
    """16 hex digits identifying what a card describes: tasks, encoder shape, provenance, merge and re-alignment."""
    backbone = config.backbone_config
    described = {
        "tasks": config.tasks,
        "task_order": list(config.tasks),
        "encoder": {
            key: getattr(backbone, key, None)
            for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "patch_size", "image_size")
        },
        "base": [config.base_model_name_or_path, config.base_model_revision],
        "merge": config.merge,
        "realignment": config.realignment,
        "block_adapter": [config.block_adapter, config.block_adapter_rank],
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def content_digest(text: str) -> str:
    """16 hex digits of a card's metadata (parsed, so YAML formatting does not count) and text, marker excluded."""
    text = _MARKER.sub("", text)
    match = _FRONT_MATTER.match(text)
    metadata, body = (yaml.safe_load(match.group(1)) or {}, match.group(2)) if match else ({}, text)
    payload = json.dumps(metadata, sort_keys=True, default=str) + "\n" + body.strip()
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def card_origin(text: str | None) -> str:
    """Who wrote a README: `missing` (none or empty), `generic` (transformers' auto-generated card), `hf_simo`
    (written by this package and unedited since: its marker's digest matches) or `user` (anything else, including an
    hf_simo card someone edited)."""
    if text is None or not text.strip():
        return "missing"
    if TRANSFORMERS_GENERIC_TEXT in text:
        return "generic"
    found = _MARKER.search(text)
    if found is not None and found.group(2) == content_digest(text):
        return "hf_simo"
    return "user"


def card_needs_writing(text: str | None, config: SimoConfig) -> bool:
    """Whether hf_simo should (re)write a README: missing, transformers' generic card, or an unedited hf_simo card
    that describes another config. A card the user wrote (or edited), or hf_simo's card of this same config (which
    may carry evaluation results), is kept."""
    origin = card_origin(text)
    if origin in ("missing", "generic"):
        return True
    if origin == "hf_simo":
        return _MARKER.search(text).group(1) != config_fingerprint(config)
    return False


__all__ = [
    "TRANSFORMERS_GENERIC_TEXT",
    "UNSIGNED",
    "card_needs_writing",
    "card_origin",
    "config_fingerprint",
    "content_digest",
]

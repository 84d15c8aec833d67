"""Encoders shipped inside the package, loaded through the normal `from_pretrained` path (`shipped.py`; the weights
are package data in ``embedded/``).

Names load on first use (`hf_simo.utils.lazy`); the table below is the package's public API.
"""

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports


_EXPORTS = {
    "PROVENANCE_NAME": "hf_simo.encoders.shipped",
    "SHIPPED_ENCODER": "hf_simo.encoders.shipped",
    "ShippedEncoderMissingError": "hf_simo.encoders.shipped",
    "shipped_encoder_digest": "hf_simo.encoders.shipped",
    "shipped_encoder_identity": "hf_simo.encoders.shipped",
    "shipped_encoder_path": "hf_simo.encoders.shipped",
    "shipped_encoder_provenance": "hf_simo.encoders.shipped",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for IDEs and type checkers; at run time the table above resolves the names
    from hf_simo.encoders.shipped import (
        PROVENANCE_NAME,
        SHIPPED_ENCODER,
        ShippedEncoderMissingError,
        shipped_encoder_digest,
        shipped_encoder_identity,
        shipped_encoder_path,
        shipped_encoder_provenance,
    )

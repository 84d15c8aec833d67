"""One module per source format, each defining `IMPORTER` (listed in `hf_simo.interop.registry`)."""

from ...utils.lazy import lazy_exports


_EXPORTS = {}  # the format modules are imported by name (their registry lists them)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

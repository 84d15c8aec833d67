"""Importing the checkpoints people already have (transformers' DPT-DINOv2, Depth Anything, DINOv2 encoders) and
exporting tasks back to transformers' classes: `registry` (one importer per format under `importers/`), `plan`
(`ImportPlan`: a source as a SimoModel config + a one-to-one name map), `export` (one exporter per target class
under `exporters/`)."""

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports


_EXPORTS = {
    "EXPORTERS": "hf_simo.interop.export",
    "IMPORTERS": "hf_simo.interop.registry",
    "ImportPlan": "hf_simo.interop.plan",
    "Importer": "hf_simo.interop.plan",
    "export_task": "hf_simo.interop.export",
    "find_importer": "hf_simo.interop.registry",
    "import_plan": "hf_simo.interop.registry",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for IDEs and type checkers; at run time the table above resolves the names
    from hf_simo.interop.export import EXPORTERS, export_task
    from hf_simo.interop.plan import Importer, ImportPlan
    from hf_simo.interop.registry import IMPORTERS, find_importer, import_plan

"""The merge's I/O, apart from the methods and the job (mergekit's `io/`): `sources` (finding, opening and validating
checkpoints; Hub through `hf_simo.hub`), `reader` (tensor by tensor), `writer` (sharded safetensors, streamed) and
`folder` (the merged folder, atomically), `spill` (tensors parked on disk during a two-read merge)."""

from typing import TYPE_CHECKING

from ...utils.lazy import lazy_exports


_EXPORTS = {
    "MergeSources": "hf_simo.merging.io.sources",
    "ShardedSafetensorsWriter": "hf_simo.merging.io.writer",
    "TaskSource": "hf_simo.merging.io.sources",
    "TensorReader": "hf_simo.merging.io.reader",
    "open_checkpoint": "hf_simo.merging.io.sources",
    "open_sources": "hf_simo.merging.io.sources",
    "write_merged_folder": "hf_simo.merging.io.folder",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for IDEs and type checkers; at run time the table above resolves the names
    from hf_simo.merging.io.folder import write_merged_folder
    from hf_simo.merging.io.reader import TensorReader
    from hf_simo.merging.io.sources import MergeSources, TaskSource, open_checkpoint, open_sources
    from hf_simo.merging.io.writer import ShardedSafetensorsWriter

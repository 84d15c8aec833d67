"""Model merging: one multi-task `SimoModel` from several single-task DINOv2 checkpoints (paper section 3.0.2).

Shaped like mergekit: the methods apart from the I/O, both apart from the modules that compose them.

- `merge_methods/`: merging methods as pure tensor functions, one file per family (Task Arithmetic, TIES, magnitude
  pruning, DARE, Model Breadcrumbs, TALL masks and consensus, LiNeS) and their registry;
- `io/`: reading sources (`io.sources`, `io.reader`), writing the merged folder (`io.folder`, `io.writer`);
- `job`: `MergeJob`, the streaming merge tensor by tensor; `plan`: the merged config and tensor plan;
  `checks`: architecture, finiteness and provenance checks; `layers`: per-layer coefficient groups;
- `api`: `merge` (in memory), `merge_to_folder` (streamed, atomic; no Hub push: `hf_simo.publishing` does that);
- `state_dict`: `merge_state_dicts`, the in-memory reference path; `functional`: merged encoder parameters as a
  differentiable function of per-task, per-layer coefficients; `select`: exact streaming k-th magnitude;
- `search`: grid search of alpha and method options on a validation set, and `search_and_merge`;
- `arguments`: the merge options of every verb (`SourceArguments`, `MergeMethodArguments`, `MergeOutputArguments`).

Names load on first use (`hf_simo.utils.lazy`); the table below is the package's public API.
"""

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports


_EXPORTS = {
    "DEFAULT_ALPHA_GRID": "hf_simo.merging.arguments",
    "DEFAULT_MAX_RELATIVE_DISTANCE": "hf_simo.merging.arguments",
    "DTYPES": "hf_simo.merging.plan",
    "LayerwiseMerge": "hf_simo.merging.functional",
    "METHODS": "hf_simo.merging.merge_methods",
    "MergeJob": "hf_simo.merging.job",
    "MergeMethodArguments": "hf_simo.merging.arguments",
    "MergeOptionError": "hf_simo.errors",
    "MergeOutcome": "hf_simo.merging.search",
    "MergeOutputArguments": "hf_simo.merging.arguments",
    "MergeSources": "hf_simo.merging.io.sources",
    "MethodSpec": "hf_simo.merging.merge_methods",
    "NotFineTunedError": "hf_simo.errors",
    "SearchResult": "hf_simo.merging.search",
    "SourceArguments": "hf_simo.merging.arguments",
    "TaskSource": "hf_simo.merging.io.sources",
    "coefficient_groups": "hf_simo.merging.functional",
    "functional_merge": "hf_simo.merging.functional",
    "merge": "hf_simo.merging.api",
    "merge_from_arguments": "hf_simo.merging.api",
    "merge_state_dicts": "hf_simo.merging.state_dict",
    "merge_to_folder": "hf_simo.merging.api",
    "open_sources": "hf_simo.merging.io.sources",
    "parse_task_sources": "hf_simo.merging.io.sources",
    "search": "hf_simo.merging.search",
    "search_and_merge": "hf_simo.merging.search",
    "stack_task_vectors": "hf_simo.merging.functional",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for IDEs and type checkers; at run time the table above resolves the names
    from hf_simo.errors import MergeOptionError, NotFineTunedError
    from hf_simo.merging.api import merge, merge_from_arguments, merge_to_folder
    from hf_simo.merging.arguments import (
        DEFAULT_ALPHA_GRID,
        DEFAULT_MAX_RELATIVE_DISTANCE,
        MergeMethodArguments,
        MergeOutputArguments,
        SourceArguments,
    )
    from hf_simo.merging.functional import LayerwiseMerge, coefficient_groups, functional_merge, stack_task_vectors
    from hf_simo.merging.io.sources import MergeSources, TaskSource, open_sources, parse_task_sources
    from hf_simo.merging.job import MergeJob
    from hf_simo.merging.merge_methods import METHODS, MethodSpec
    from hf_simo.merging.plan import DTYPES
    from hf_simo.merging.search import MergeOutcome, SearchResult, search, search_and_merge
    from hf_simo.merging.state_dict import merge_state_dicts

"""Model merging: one multi-task `SimoModel` from several single-task DINOv2 checkpoints (paper section 3.0.2).

- `methods`: merging methods as pure tensor functions (Task Arithmetic, TIES, magnitude pruning, DARE, Model
  Breadcrumbs, TALL masks and consensus, LiNeS), `merge_state_dicts` for encoders held in memory;
- `functional`: merged encoder parameters as a differentiable function of per-task, per-layer coefficients;
- `select`: exact k-th magnitude over a vector streamed in chunks (radix select), for TIES' global trim;
- `sources`: finding (Hub or local), validating and reading checkpoints tensor by tensor;
- `engine`: `merge` (in memory) and `merge_to_folder` (streamed, atomic, optional push to the Hub);
- `search`: grid search of alpha and method options on a validation set, and `search_and_merge`;
- `arguments`: the merge options of every verb (`SourceArguments`, `MergeMethodArguments`, `MergeOutputArguments`).

Names load on first use (`hf_simo.utils.lazy`); the table below is the package's public API.
"""

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports


_EXPORTS = {
    "DEFAULT_ALPHA_GRID": "hf_simo.merging.arguments",
    "DEFAULT_MAX_RELATIVE_DISTANCE": "hf_simo.merging.arguments",
    "DTYPES": "hf_simo.merging.engine",
    "LayerwiseMerge": "hf_simo.merging.functional",
    "METHODS": "hf_simo.merging.methods",
    "MergeArguments": "hf_simo.merging.engine",
    "MergeMethodArguments": "hf_simo.merging.arguments",
    "MergeOptionError": "hf_simo.errors",
    "MergeOutcome": "hf_simo.merging.search",
    "MergeOutputArguments": "hf_simo.merging.arguments",
    "NotFineTunedError": "hf_simo.errors",
    "SearchResult": "hf_simo.merging.search",
    "SourceArguments": "hf_simo.merging.arguments",
    "TaskSource": "hf_simo.merging.sources",
    "coefficient_groups": "hf_simo.merging.functional",
    "functional_merge": "hf_simo.merging.functional",
    "merge": "hf_simo.merging.engine",
    "merge_from_arguments": "hf_simo.merging.engine",
    "merge_state_dicts": "hf_simo.merging.methods",
    "merge_to_folder": "hf_simo.merging.engine",
    "open_sources": "hf_simo.merging.engine",
    "parse_task_sources": "hf_simo.merging.sources",
    "search": "hf_simo.merging.search",
    "search_and_merge": "hf_simo.merging.search",
    "stack_task_vectors": "hf_simo.merging.functional",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for IDEs and type checkers; at run time the table above resolves the names
    from hf_simo.errors import MergeOptionError, NotFineTunedError
    from hf_simo.merging.arguments import (
        DEFAULT_ALPHA_GRID,
        DEFAULT_MAX_RELATIVE_DISTANCE,
        MergeMethodArguments,
        MergeOutputArguments,
        SourceArguments,
    )
    from hf_simo.merging.engine import (
        DTYPES,
        MergeArguments,
        merge,
        merge_from_arguments,
        merge_to_folder,
        open_sources,
    )
    from hf_simo.merging.functional import LayerwiseMerge, coefficient_groups, functional_merge, stack_task_vectors
    from hf_simo.merging.methods import METHODS, merge_state_dicts
    from hf_simo.merging.search import MergeOutcome, SearchResult, search, search_and_merge
    from hf_simo.merging.sources import TaskSource, parse_task_sources

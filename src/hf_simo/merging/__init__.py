"""Model merging: one multi-task `SimoModel` from several single-task DINOv2 checkpoints (paper section 3.0.2).

- `methods`: merging methods as pure tensor functions (Task Arithmetic, TIES, magnitude pruning, DARE, Model
  Breadcrumbs, TALL masks and consensus, LiNeS), `merge_state_dicts` for encoders held in memory;
- `functional`: merged encoder parameters as a differentiable function of per-task, per-layer coefficients;
- `select`: exact k-th magnitude over a vector streamed in chunks (radix select), for TIES' global trim;
- `sources`: finding (Hub or local), validating and reading checkpoints tensor by tensor;
- `engine`: `merge` (in memory) and `merge_to_folder` (streamed, atomic, optional push to the Hub);
- `search`: grid search of alpha and method options on a validation set;
- `cli`: the `hf-simo merge` sub-command.
"""

from .engine import MergeArguments, merge, merge_from_arguments, merge_to_folder, open_sources
from .functional import LayerwiseMerge, coefficient_groups, functional_merge, stack_task_vectors
from .methods import METHODS, MergeOptionError, merge_state_dicts
from .search import SearchResult, search
from .sources import NotFineTunedError, TaskSource


__all__ = [
    "METHODS",
    "LayerwiseMerge",
    "MergeArguments",
    "MergeOptionError",
    "NotFineTunedError",
    "SearchResult",
    "TaskSource",
    "coefficient_groups",
    "functional_merge",
    "merge",
    "merge_from_arguments",
    "merge_state_dicts",
    "merge_to_folder",
    "open_sources",
    "search",
    "stack_task_vectors",
]

"""Merging methods as pure tensor functions: task vectors + weights + options in, one merged task vector out
(no I/O: the streaming merge in `hf_simo.merging.job` and the in-memory one in `hf_simo.merging.state_dict` call them).

Shaped like mergekit's `merge_methods/`: one file per family, each defining its functions and a `MethodSpec`
(`base.py`), listed once in `registry.py`:

- `task_arithmetic` (Ilharco et al. 2023), `ties` (Yadav et al. 2023; also the TIES base of the three below),
  `magnitude` (magnitude pruning), `dare` (Yu et al. 2024), `breadcrumbs` (Davari & Belilovsky 2024),
  `tall` (TALL masks and consensus, Wang et al. 2024), `lines` (LiNeS, Wang et al. 2025);
- `common`: task vectors, the TIES magnitude trim, lazy per-task views.

Adding a method: a file with its functions and `SPEC = MethodSpec(name, summary, options, merge=...)`, and one line
in `registry.METHODS`.
"""

from typing import TYPE_CHECKING

from ...utils.lazy import lazy_exports


_EXPORTS = {
    "METHODS": "hf_simo.merging.merge_methods.registry",
    "METHOD_ALIASES": "hf_simo.merging.merge_methods.registry",
    "MergeOptionError": "hf_simo.errors",
    "MethodSpec": "hf_simo.merging.merge_methods.base",
    "apply_task_vector": "hf_simo.merging.merge_methods.common",
    "breadcrumbs": "hf_simo.merging.merge_methods.breadcrumbs",
    "breadcrumbs_mask": "hf_simo.merging.merge_methods.breadcrumbs",
    "consensus": "hf_simo.merging.merge_methods.tall",
    "dare": "hf_simo.merging.merge_methods.dare",
    "dare_drop": "hf_simo.merging.merge_methods.dare",
    "dare_mask": "hf_simo.merging.merge_methods.dare",
    "dare_seed": "hf_simo.merging.merge_methods.dare",
    "disjoint_merge": "hf_simo.merging.merge_methods.ties",
    "elect_sign": "hf_simo.merging.merge_methods.ties",
    "final_scale": "hf_simo.merging.merge_methods.registry",
    "get_method": "hf_simo.merging.merge_methods.registry",
    "lines_auto_alpha": "hf_simo.merging.merge_methods.lines",
    "lines_scales": "hf_simo.merging.merge_methods.lines",
    "magnitude_prune": "hf_simo.merging.merge_methods.magnitude",
    "magnitude_threshold": "hf_simo.merging.merge_methods.common",
    "majority_sign": "hf_simo.merging.merge_methods.ties",
    "merge_task_vectors": "hf_simo.merging.merge_methods.registry",
    "resolve_method": "hf_simo.merging.merge_methods.registry",
    "sign_count": "hf_simo.merging.merge_methods.ties",
    "squared_norm": "hf_simo.merging.merge_methods.common",
    "tall_mask": "hf_simo.merging.merge_methods.tall",
    "tall_masks": "hf_simo.merging.merge_methods.tall",
    "task_arithmetic": "hf_simo.merging.merge_methods.task_arithmetic",
    "task_vector": "hf_simo.merging.merge_methods.common",
    "ties": "hf_simo.merging.merge_methods.ties",
    "trim": "hf_simo.merging.merge_methods.common",
    "trim_scope": "hf_simo.merging.merge_methods.registry",
    "uses_sign_election": "hf_simo.merging.merge_methods.registry",
    "validate_alpha": "hf_simo.merging.merge_methods.registry",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for IDEs and type checkers; at run time the table above resolves the names
    from hf_simo.errors import MergeOptionError
    from hf_simo.merging.merge_methods.base import MethodSpec
    from hf_simo.merging.merge_methods.breadcrumbs import breadcrumbs, breadcrumbs_mask
    from hf_simo.merging.merge_methods.common import (
        apply_task_vector,
        magnitude_threshold,
        squared_norm,
        task_vector,
        trim,
    )
    from hf_simo.merging.merge_methods.dare import dare, dare_drop, dare_mask, dare_seed
    from hf_simo.merging.merge_methods.lines import lines_auto_alpha, lines_scales
    from hf_simo.merging.merge_methods.magnitude import magnitude_prune
    from hf_simo.merging.merge_methods.registry import (
        METHOD_ALIASES,
        METHODS,
        final_scale,
        get_method,
        merge_task_vectors,
        resolve_method,
        trim_scope,
        uses_sign_election,
        validate_alpha,
    )
    from hf_simo.merging.merge_methods.tall import consensus, tall_mask, tall_masks
    from hf_simo.merging.merge_methods.task_arithmetic import task_arithmetic
    from hf_simo.merging.merge_methods.ties import disjoint_merge, elect_sign, majority_sign, sign_count, ties

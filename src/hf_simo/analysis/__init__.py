"""Analyses of merged SIMO models: task relationships from task vectors (paper section 6.4), plots, qualitative grids.

- `relationships`: sweep θ_0 + λ·τ_t for each primary task t with every head attached, the T×T effect matrix and a
  short text report of beneficial/conflicting pairs and sensitive tasks; `sweep`: the same as a job over checkpoints
  (`run_relationships`, what `hf-simo relationships` runs);
- `combinations`: Task Arithmetic on every k-task combination, α chosen on validation (Figure 1);
- `plots`: relationship panels (Figures 3, 5, 6), the effect heatmap, per-layer coefficients (Figure 2);
- `qualitative`: input / ground truth / predictions grids (Figure 4).

Plotting needs matplotlib (a dependency of hf_simo); every figure is drawn on the Agg canvas, no display needed.
Names load on first use (`hf_simo.utils.lazy`); the table below is the package's public API.
"""

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports


_EXPORTS = {
    "CombinationResult": "hf_simo.analysis.combinations",
    "DEFAULT_LAMBDAS": "hf_simo.analysis.relationships",
    "RelationshipInputs": "hf_simo.analysis.sweep",
    "RelationshipMatrix": "hf_simo.analysis.relationships",
    "RelationshipResult": "hf_simo.analysis.relationships",
    "RelationshipSummary": "hf_simo.analysis.relationships",
    "RelationshipsArguments": "hf_simo.analysis.arguments",
    "describe_relationships": "hf_simo.analysis.relationships",
    "merge_combinations": "hf_simo.analysis.combinations",
    "relationship_inputs": "hf_simo.analysis.sweep",
    "relationship_matrix": "hf_simo.analysis.relationships",
    "run_relationships": "hf_simo.analysis.sweep",
    "summarize_relationships": "hf_simo.analysis.relationships",
    "sweep_task_vectors": "hf_simo.analysis.sweep",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for IDEs and type checkers; at run time the table above resolves the names
    from hf_simo.analysis.arguments import RelationshipsArguments
    from hf_simo.analysis.combinations import CombinationResult, merge_combinations
    from hf_simo.analysis.relationships import (
        DEFAULT_LAMBDAS,
        RelationshipMatrix,
        RelationshipResult,
        RelationshipSummary,
        describe_relationships,
        relationship_matrix,
        summarize_relationships,
    )
    from hf_simo.analysis.sweep import RelationshipInputs, relationship_inputs, run_relationships, sweep_task_vectors

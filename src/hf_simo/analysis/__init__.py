"""Analyses of merged SIMO models: task relationships from task vectors (paper section 6.4), plots, qualitative grids.

- `relationships`: sweep θ_0 + λ·τ_t for each primary task t with every head attached, the T×T effect matrix and a
  short text report of beneficial/conflicting pairs and sensitive tasks;
- `plots`: relationship panels (Figures 3, 5, 6), the effect heatmap, per-layer coefficients (Figure 2);
- `qualitative`: input / ground truth / predictions grids (Figure 4).

Plotting needs matplotlib (a dependency of hf_simo); every figure is drawn on the Agg canvas, no display needed.
"""

from .relationships import (
    DEFAULT_LAMBDAS,
    RelationshipMatrix,
    RelationshipResult,
    RelationshipSummary,
    describe_relationships,
    relationship_matrix,
    summarize_relationships,
    sweep_task_vectors,
)


__all__ = [
    "DEFAULT_LAMBDAS",
    "RelationshipMatrix",
    "RelationshipResult",
    "RelationshipSummary",
    "describe_relationships",
    "relationship_matrix",
    "summarize_relationships",
    "sweep_task_vectors",
]

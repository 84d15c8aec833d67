"""`RelationshipsArguments`: the sweep options of ``hf-simo relationships`` (paper section 6.4), in issue 11's one
vocabulary; its sources and data options are `SourceArguments` and `DataArguments`. Plain dataclass, no torch.

`hf-simo relationships` is generated from it (`hf_simo.cli.relationships`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..utils.fields import option, require_positive


@dataclass
class RelationshipsArguments:
    """The λ grid of the sweeps, the λ of the T×T matrix, the output folder and the evaluation batch size."""

    lambdas: list[float] | None = option(None, "λ grid of the sweeps (default 0, 0.1, ..., 1.5).")
    matrix_lambda: float = option(1.0, "λ of the T×T matrix (one of --lambdas).")
    output_dir: str = option("relationships", "Where the plots, the report and relationships.json go.")
    per_device_eval_batch_size: int = option(64, "Evaluation batch size.")

    def __post_init__(self) -> None:
        require_positive(self, "per_device_eval_batch_size")


__all__ = ["RelationshipsArguments"]

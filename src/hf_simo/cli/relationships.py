"""`hf-simo relationships`: task relationships, sweep θ_0 + λ·τ_t and plot every task's normalized performance
(paper section 6.4; the sweep is `hf_simo.analysis.sweep.run_relationships`).

    hf-simo relationships --task_checkpoints org/seg org/depth org/normals --lambdas 0 0.5 1 --output_dir rel

Options: `hf_simo.analysis.RelationshipsArguments` (λ grid, matrix λ, output folder, batch size),
`hf_simo.merging.SourceArguments` (the checkpoints and θ_0), `hf_simo.data.DataArguments` (the validation split
evaluated per point: ``--validation_samples``), `hf_simo.hub.HubOptions` and the common options.
"""

from __future__ import annotations

from pathlib import Path

from ..analysis.arguments import RelationshipsArguments
from ..data.arguments import DataArguments
from ..errors import OptionError
from ..hub import HubOptions
from ..merging import SourceArguments
from .runner import EXIT_OK, Command


NOT_APPLICABLE = {
    "train_samples": "it builds no training split",
    "test_samples": "it evaluates the validation split (--validation_samples)",
    "max_train_samples": "it builds no training split",
    "max_eval_samples": "the validation split evaluated per point is --validation_samples",
    "augment": "evaluation never augments",
}
RENAMED = {
    "task": "--task_checkpoints",
    "base": "--base_model",
    "batch_size": "--per_device_eval_batch_size",
    "samples": "--validation_samples",
    "no_progress": "--disable_tqdm",
}


def check_relationship_options(relationships: RelationshipsArguments, sources: SourceArguments) -> list[float]:
    """Every option of `relationships` that can be checked before the sweep (minutes of work): the λ grid, the
    matrix λ on it, the output folder, at least one checkpoint."""
    from ..analysis.relationships import check_lambda_grid, lambda_grid_index

    if not sources.task_checkpoints:
        raise OptionError("--task_checkpoints is required: the single-task checkpoints whose task vectors are swept")
    try:
        grid = check_lambda_grid(relationships.lambdas)
    except (TypeError, ValueError) as err:
        raise OptionError(f"--lambdas: {err}") from err
    if lambda_grid_index(relationships.matrix_lambda, grid) is None:
        raise OptionError(
            f"--matrix_lambda {relationships.matrix_lambda:g} is not on the λ grid {[f'{v:g}' for v in grid]}; add "
            "it to --lambdas or pass one of them"
        )
    output = Path(relationships.output_dir)
    if output.exists() and not output.is_dir():
        raise OptionError(f"--output_dir {output} is a file, not a folder")
    return grid


def run(relationships: RelationshipsArguments, sources: SourceArguments, data: DataArguments, hub: HubOptions) -> int:
    from ..analysis import describe_relationships, relationship_matrix
    from ..analysis import sweep as sweep_module  # looked up at run time (tests replace run_relationships)
    from ..analysis.plots import plot_relationship_matrix, plot_relationships
    from ..atomic import atomic_write_text

    check_relationship_options(relationships, sources)
    result = sweep_module.run_relationships(relationships, sources, data, hub)
    matrix = relationship_matrix(result, relationships.matrix_lambda)  # computed before anything is written
    report = describe_relationships(result, relationships.matrix_lambda)
    output = Path(relationships.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    files = plot_relationships(result, output / "relationships")  # each file is written atomically
    files += plot_relationship_matrix(matrix, output / "relationship_matrix")
    atomic_write_text(output / "relationships.md", report + "\n\n" + matrix.to_markdown() + "\n")
    result.save(output / "relationships.json")
    print(report)
    for path in [*files, output / "relationships.md", output / "relationships.json"]:
        print(f"wrote {path}")
    return EXIT_OK


COMMAND = Command(
    "hf-simo relationships",
    (RelationshipsArguments, SourceArguments, DataArguments, HubOptions),
    run,
    not_applicable=NOT_APPLICABLE,
    renamed=RENAMED,
    description="Task relationships: sweep θ_0 + λ·τ_t, plot every task's normalized performance against λ.",
)
main = COMMAND.main

__all__ = ["COMMAND", "NOT_APPLICABLE", "RENAMED", "check_relationship_options", "main", "run"]

"""`hf-simo relationships`: task relationships, sweep θ_0 + λ·τ_t and plot every task's normalized performance
(paper section 6.4; hand-written argparse until it moves to dataclasses, see `hf_simo.cli.legacy`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .legacy import add_data_options, positive_int
from .runner import EXIT_OK


HELP = "task relationships: sweep θ_0 + λ·τ_t, plot normalized performance against λ"


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the verb's options to `parser`."""
    parser.add_argument(
        "--task", action="append", required=True, metavar="[NAME=]SOURCE[@REV]", help="single-task checkpoint; repeat"
    )
    parser.add_argument("--base", help="θ_0 (default: the base recorded in the checkpoints)")
    parser.add_argument("--allow-distant", action="store_true", help="only warn about task encoders far from the base")
    add_data_options(parser)
    parser.add_argument("--samples", type=positive_int, default=200, help="validation samples evaluated per point")
    parser.add_argument("--lambdas", type=float, nargs="+", help="λ grid (default 0, 0.1, ..., 1.5)")
    parser.add_argument("--matrix-lambda", type=float, default=1.0, help="λ of the T×T matrix (default 1)")
    parser.add_argument("--output-dir", default="relationships", help="where plots and the report go")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def check_relationship_options(args: argparse.Namespace) -> list[float]:
    """Every option of `relationships` that can be checked before the sweep (minutes of work): the λ grid."""
    from ..analysis.relationships import check_lambda_grid, lambda_grid_index

    try:
        grid = check_lambda_grid(args.lambdas)
    except (TypeError, ValueError) as err:
        raise ValueError(f"--lambdas: {err}") from err
    if lambda_grid_index(args.matrix_lambda, grid) is None:
        raise ValueError(
            f"--matrix-lambda {args.matrix_lambda:g} is not on the λ grid {[f'{v:g}' for v in grid]}; add it to "
            "--lambdas or pass one of them"
        )
    output = Path(args.output_dir)
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output-dir {output} is a file, not a folder")
    return grid


def run(args: argparse.Namespace) -> int:
    from ..analysis import describe_relationships, relationship_matrix
    from ..analysis.plots import plot_relationship_matrix, plot_relationships
    from ..analysis.sweep import run_relationships
    from ..atomic import atomic_write_text
    from ..merging.arguments import DEFAULT_MAX_RELATIVE_DISTANCE

    check_relationship_options(args)
    result, report_files = run_relationships(
        args.task,
        base=args.base,
        dataset=args.dataset,
        dataset_path=args.dataset_path,
        image_size=args.image_size,
        samples=args.samples,
        lambdas=args.lambdas,
        batch_size=args.batch_size,
        max_relative_distance=None if args.allow_distant else DEFAULT_MAX_RELATIVE_DISTANCE,
        progress=not args.no_progress,
    )
    matrix = relationship_matrix(result, args.matrix_lambda)  # everything is computed before anything is written
    report = describe_relationships(result, args.matrix_lambda)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    files = plot_relationships(result, output / "relationships")  # each file is written atomically
    files += plot_relationship_matrix(matrix, output / "relationship_matrix")
    atomic_write_text(output / "relationships.md", report + "\n\n" + matrix.to_markdown() + "\n")
    result.save(output / "relationships.json")
    print(report)
    for path in [*files, output / "relationships.md", output / "relationships.json", *report_files]:
        print(f"wrote {path}")
    return EXIT_OK


__all__ = ["HELP", "configure_parser", "run"]

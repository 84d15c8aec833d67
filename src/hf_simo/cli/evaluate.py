"""`hf-simo evaluate MODEL`: metrics of a SimoModel on a dataset split (hand-written argparse until it moves to
dataclasses; see `hf_simo.cli.legacy`)."""

from __future__ import annotations

import argparse

from .legacy import add_data_options, positive_int
from .runner import EXIT_OK


HELP = "metrics of a SimoModel on a dataset split"


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the verb's options to `parser`."""
    parser.add_argument("model", help="SimoModel folder or Hub repo id")
    parser.add_argument("--revision", help="revision of a Hub repo")
    parser.add_argument("--tasks", nargs="+", help="evaluate only these tasks")
    add_data_options(parser)
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--samples", type=positive_int, default=500, help="samples of the embedded benchmark's split")
    parser.add_argument("--output", help="also write the metrics as JSON here")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..atomic import atomic_write_json
    from ..data.loading import load_training_data
    from ..evaluation import evaluate_dataset
    from ..metrics import format_metric
    from ..modeling_simo import SimoModel

    model = SimoModel.from_pretrained(args.model, revision=args.revision, tasks=args.tasks).eval()
    data = load_training_data(
        args.dataset,
        dataset_path=args.dataset_path,
        image_size=args.image_size,
        test_samples=args.samples if args.split == "test" else None,
        validation_samples=args.samples if args.split == "validation" else 200,
    )
    if args.split not in data:
        raise KeyError(f"split {args.split!r} not in the dataset; it has {list(data)}")
    results = evaluate_dataset(model, data[args.split], batch_size=args.batch_size)
    lines = ["| task | metric | value |", "|---|---|--:|"]
    for task, metrics in results.items():
        for name, value in metrics.items():
            lines.append(f"| {task} | {name} | {format_metric(name, value)} |")
    print("\n".join(lines))
    if args.output:
        atomic_write_json(
            args.output,
            {"model": args.model, "dataset": args.dataset, "split": args.split, "results": results},
            indent=2,
            default=str,
        )
        print(f"wrote {args.output}")
    return EXIT_OK


__all__ = ["HELP", "configure_parser", "run"]

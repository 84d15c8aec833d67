"""`hf-simo predict MODEL IMAGE...`: predict every task for image files, one PNG per image and task and a grid
(hand-written argparse until it moves to dataclasses; see `hf_simo.cli.legacy`)."""

from __future__ import annotations

import argparse

from .runner import EXIT_OK


HELP = "predict every task for image files and write PNGs"


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the verb's options to `parser`."""
    parser.add_argument("model", help="SimoModel folder or Hub repo id")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("--output-dir", required=True, help="where the PNGs go (<image>.<task>.png, <image>.grid.png)")
    parser.add_argument("--tasks", nargs="+", help="predict only these tasks (default: all)")
    parser.add_argument("--revision", help="revision of a Hub repo")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default 4)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..predict import predict_to_folder

    written = predict_to_folder(
        args.model,
        args.images,
        args.output_dir,
        tasks=args.tasks,
        revision=args.revision,
        device=args.device,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    print(f"wrote {len(written)} file(s) for {len(args.images)} image(s) to {args.output_dir}")
    return EXIT_OK


__all__ = ["HELP", "configure_parser", "run"]

"""`hf-simo merge`: merge single-task checkpoints into one SimoModel folder, optionally pushed to the Hub.

    hf-simo merge --base facebook/dinov2-base --task seg=org/nyuv2-seg --task depth=org/nyuv2-depth@v1 \\
        --method ties --density 0.2 --alpha 1.0 --output merged/ [--push-to-hub org/nyuv2-merged]

`hf_simo.cli` runs it as a legacy verb (`configure_parser` + `run`, see `hf_simo.cli.legacy`);
`add_merge_subparser(subparsers)` adds it to another program's parser; `main()` runs it standalone
(`python -m hf_simo.cli.merge ...`). Hand-written argparse until it moves to dataclasses (`hf_simo.merging.arguments`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import CheckpointError, MergeOptionError, OutputBusyError
from ..merging.arguments import DEFAULT_MAX_RELATIVE_DISTANCE
from ..merging.engine import DTYPES, MergeArguments, merge_from_arguments, merge_to_folder
from ..merging.methods import METHODS
from ..publishing import push_folder_to_hub
from .runner import Command


HELP = "merge single-task checkpoints into one multi-task SimoModel"


_OPTION_FLAGS = (
    "density",
    "scope",
    "aggregate",
    "seed",
    "rescale",
    "sign_election",
    "gamma",
    "tall_lambda",
    "min_agreement",
    "base_method",
    "beta",
    "lines_alpha",
)


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, _, raw = text.partition("=")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().replace("-", "_"), value


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the merge arguments to `parser`."""
    sources = parser.add_argument_group("sources")
    sources.add_argument(
        "--task",
        dest="tasks",
        action="append",
        required=True,
        metavar="[NAME=]SOURCE[@REV]",
        help="single-task SimoModel checkpoint (Hub id or folder); NAME= renames its task. Repeat per task.",
    )
    sources.add_argument(
        "--base", default=None, help="pre-trained encoder theta_0 (default: the base the checkpoints record)"
    )
    sources.add_argument("--revision", dest="base_revision", default=None, help="Hub revision of --base")
    sources.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the stored login)")
    sources.add_argument("--cache-dir", default=None, help="Hugging Face cache folder")
    sources.add_argument("--local-files-only", action="store_true", help="use the local cache only, no download")
    sources.add_argument("--allow-pickle", action="store_true", help="allow .bin (pickle) checkpoints; unsafe")
    sources.add_argument(
        "--max-relative-distance",
        type=float,
        default=DEFAULT_MAX_RELATIVE_DISTANCE,
        help="refuse task encoders with ||theta_t - theta_0|| / ||theta_0|| above this (default %(default)s)",
    )
    sources.add_argument("--allow-distant", action="store_true", help="only warn about distant task encoders")

    method = parser.add_argument_group("method")
    method.add_argument("--method", default="task_arithmetic", help=f"one of {sorted(METHODS)} (default %(default)s)")
    method.add_argument("--alpha", type=float, default=1.0, help="theta = theta_0 + alpha * tau_MTL (default 1.0)")
    method.add_argument("--density", type=float, help="fraction of entries kept, in (0, 1] (ties, magnitude, ...)")
    method.add_argument("--scope", choices=("global", "tensor"), help="magnitude trim over the encoder or per tensor")
    method.add_argument("--aggregate", choices=("mean", "sum"), help="disjoint merge aggregate (ties)")
    method.add_argument("--seed", type=int, help="DARE seed")
    method.add_argument("--rescale", action=argparse.BooleanOptionalAction, default=None, help="DARE rescaling")
    method.add_argument("--sign-election", action=argparse.BooleanOptionalAction, default=None, help="DARE-TIES")
    method.add_argument("--gamma", type=float, help="Breadcrumbs: fraction of largest magnitudes dropped")
    method.add_argument("--tall-lambda", type=float, help="consensus: TALL mask lambda")
    method.add_argument("--min-agreement", type=int, help="consensus: masks an entry needs (default 2)")
    method.add_argument("--base-method", choices=("task_arithmetic", "ties"), help="consensus/LiNeS base method")
    method.add_argument("--beta", type=float, help="LiNeS: depth scaling beta")
    method.add_argument("--lines-alpha", type=float, help="LiNeS: alpha (default: automatic)")
    method.add_argument(
        "--option",
        dest="extra_options",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="any other method option (value parsed as JSON)",
    )
    method.add_argument("--coefficients", help="per-task (per-layer) coefficients: JSON file or inline JSON")

    output = parser.add_argument_group("output")
    output.add_argument("--output", "--output-dir", dest="output_dir", required=True, help="output folder")
    output.add_argument("--dtype", default="auto", choices=("auto", *DTYPES), help="output dtype (default: auto)")
    output.add_argument("--max-shard-size", default="5GB", help="safetensors shard size (default %(default)s)")
    output.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    output.add_argument(
        "--wait-for-lock",
        action="store_true",
        help="if another merge is writing the same output, wait for it instead of failing",
    )
    output.add_argument("--push-to-hub", metavar="ORG/NAME", help="upload the merged folder to this Hub repo")
    output.add_argument("--private", action="store_true", default=None, help="create the Hub repo as private")
    output.add_argument("--commit-message", help="Hub commit message")
    output.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return parser


def add_merge_subparser(subparsers) -> argparse.ArgumentParser:
    """Register `merge` on an `argparse` sub-parsers object; the sub-command runs `run_merge(args)`."""
    parser = subparsers.add_parser(
        "merge",
        help=HELP,
        description=__doc__.split("\n\n")[0],
    )
    configure_parser(parser)
    parser.set_defaults(func=run_merge)
    return parser


def _kwargs(args: argparse.Namespace) -> dict[str, Any]:
    options = {name: getattr(args, name) for name in _OPTION_FLAGS if getattr(args, name, None) is not None}
    for key, value in args.extra_options or []:
        if key in options and options[key] != value:
            raise MergeOptionError(f"option {key!r} given twice")
        options[key] = value
    return {
        "output_dir": args.output_dir,
        "tasks": list(args.tasks),
        "base": args.base,
        "method": args.method,
        "options": options,
        "alpha": args.alpha,
        "coefficients": args.coefficients,
        "dtype": args.dtype,
        "base_revision": args.base_revision,
        "token": args.token,
        "cache_dir": args.cache_dir,
        "local_files_only": args.local_files_only,
        "allow_pickle": args.allow_pickle,
        "max_relative_distance": None if args.allow_distant else args.max_relative_distance,
        "max_shard_size": args.max_shard_size,
        "overwrite": args.overwrite,
        "wait_for_lock": args.wait_for_lock,
        "progress": args.progress,
    }


def run_merge(args: argparse.Namespace) -> int:
    """Run a parsed `merge` command; returns the process exit code (0 ok, 1 bad input or checkpoint)."""
    try:
        output = merge_to_folder(**_kwargs(args))
    except (CheckpointError, MergeOptionError, FileExistsError, OutputBusyError) as err:
        if getattr(args, "debug", False):  # hf-simo --debug merge: the traceback
            raise
        print(f"hf-simo merge: error: {err}", file=sys.stderr)
        return 1
    config = json.loads((output / "config.json").read_text())
    record = config["merge"]
    print(f"merged {len(record['sources'])} task(s) with {record['method']} (alpha={record['alpha']}) into {output}")
    for source in [record["base"], *record["sources"]]:
        what = f"task {source['task']!r}" if "task" in source else "base"
        commit = f" @ {source['commit']}" if source.get("commit") else ""
        print(f"  {what}: {source['name_or_path']}{commit}")
    if args.push_to_hub:
        info = push_folder_to_hub(
            output, args.push_to_hub, token=args.token, private=bool(args.private), commit_message=args.commit_message
        )
        print(f"pushed to {args.push_to_hub}: {info.url}")
    return 0


run = run_merge  # the legacy-verb protocol of hf_simo.cli.legacy


# `recipes/merge.py`: `MergeArguments` from the command line and/or `--config x.yaml`; returns the merged folder
RECIPE = Command(
    "recipes/merge.py",
    (MergeArguments,),
    merge_from_arguments,
    description="Merge single-task checkpoints into one multi-task SimoModel folder (YAML or command line).",
)
recipe_main = RECIPE.main


def main(argv: Sequence[str] | None = None) -> int:
    parser = configure_parser(argparse.ArgumentParser(prog="hf-simo merge", description=__doc__.split("\n\n")[0]))
    return run_merge(parser.parse_args(argv))


__all__ = ["HELP", "RECIPE", "add_merge_subparser", "configure_parser", "main", "recipe_main", "run", "run_merge"]


if __name__ == "__main__":
    raise SystemExit(main())

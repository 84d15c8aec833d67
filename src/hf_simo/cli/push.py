"""`hf-simo push FOLDER REPO_ID`: publish a saved model folder to the Hugging Face Hub (hand-written argparse until it
moves to dataclasses; see `hf_simo.cli.legacy`)."""

from __future__ import annotations

import argparse

from .runner import EXIT_OK


HELP = "publish a saved model folder to the Hugging Face Hub"


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the verb's options to `parser`."""
    parser.add_argument("folder", help="the model folder (config.json, safetensors, preprocessor, README.md)")
    parser.add_argument("repo_id", help="org/name")
    parser.add_argument("--token", help="write token (default: HF_TOKEN or `hf auth login`); never printed")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", help="branch to commit to (created if missing)")
    parser.add_argument("--commit-message", help="commit message")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--dry-run", action="store_true", help="validate and list the files; no token, no network")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..publishing import push_folder_to_hub

    result = push_folder_to_hub(
        args.folder,
        args.repo_id,
        token=args.token,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        create_pr=args.create_pr,
        dry_run=args.dry_run,
    )
    if args.dry_run:
        print(f"would push {len(result.files)} file(s) to {result.repo_id}: {', '.join(result.files)}")
    else:
        print(f"pushed {len(result.files)} file(s) to {result.repo_id}: {result.url}")
    return EXIT_OK


__all__ = ["HELP", "configure_parser", "run"]

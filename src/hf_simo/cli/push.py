"""`hf-simo push FOLDER REPO_ID`: publish a saved model folder to the Hugging Face Hub
(`hf_simo.publishing.push_folder_to_hub`).

    hf-simo push my-model org/my-model --hub_private_repo --commit_message "First version"

Options: `PushArguments` (below), `hf_simo.hub.PushOptions` (the repo: positional REPO_ID = ``hub_model_id``, its
visibility, branch, commit message, pull request), ``--token`` of `hf_simo.hub.HubOptions` and the common options.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..hub import HubOptions, PushOptions
from ..utils.fields import option
from .runner import EXIT_OK, Command


@dataclass
class PushArguments:
    """The folder pushed, and whether to only validate it."""

    folder: str = option(help="The model folder: config.json, safetensors, preprocessor, README.md (positional).")
    dry_run: bool = option(False, "Validate and list the files; no token, no network.")


NOT_APPLICABLE = {name: "a push only uploads (the token is its one Hub option)" for name in (
    "cache_dir", "local_files_only", "allow_pickle"
)}  # fmt: skip
RENAMED = {
    "private": "--hub_private_repo",
    "revision": "--hub_revision",
}


def run(push: PushArguments, options: PushOptions, hub: HubOptions) -> int:
    from ..errors import OptionError
    from ..publishing import push_folder_to_hub

    if not options.hub_model_id:
        raise OptionError("REPO_ID is required: the Hub repo to push to, ORG/NAME")
    result = push_folder_to_hub(
        push.folder, options.hub_model_id, token=hub.token, dry_run=push.dry_run, **options.push_kwargs()
    )
    if push.dry_run:
        print(f"would push {len(result.files)} file(s) to {result.repo_id}: {', '.join(result.files)}")
    else:
        print(f"pushed {len(result.files)} file(s) to {result.repo_id}: {result.url}")
    return EXIT_OK


COMMAND = Command(
    "hf-simo push",
    (PushArguments, PushOptions, HubOptions),
    run,
    positional={"folder": "FOLDER", "hub_model_id": "REPO_ID"},
    not_applicable=NOT_APPLICABLE,
    renamed=RENAMED,
    description="Publish a saved model folder to the Hugging Face Hub.",
)
main = COMMAND.main

__all__ = ["COMMAND", "NOT_APPLICABLE", "PushArguments", "RENAMED", "main", "run"]

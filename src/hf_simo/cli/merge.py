"""`hf-simo merge` and `recipes/merge.py`: merge single-task checkpoints into one SimoModel folder, optionally
pushed to the Hub.

    hf-simo merge --base_model facebook/dinov2-base \\
        --task_checkpoints seg=org/nyuv2-seg depth=org/nyuv2-depth@v1 \\
        --merge_method ties --density 0.2 --alpha 1.0 --output_dir merged/ [--push_to_hub --hub_model_id org/m]
    python recipes/merge.py --config recipes/configs/merge.yaml [--alpha 0.8 ...]

The options are generated from `ARGUMENTS` (one source of truth: `hf_simo.merging.arguments` and the Hub carriers
of `hf_simo.hub`); the dashed form of each is accepted, the spellings of before issue 11 exit 2 naming the new one
(`RENAMED`). The merge itself is `hf_simo.merging.merge_from_arguments`; the push, when asked for, goes through
`hf_simo.publishing.push_folder_to_hub` after the folder is complete. This module imports no torch: the library is
imported when the command runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import OptionError
from ..hub import HubOptions, PushOptions
from ..merging.arguments import MergeMethodArguments, MergeOutputArguments, SourceArguments
from .runner import Command, refuse_push_to_hub_with_a_repo


HELP = "merge single-task checkpoints into one multi-task SimoModel"
ARGUMENTS = (SourceArguments, MergeMethodArguments, MergeOutputArguments, HubOptions, PushOptions)
# the spellings of `hf-simo merge` / `recipes/merge.py` before issue 11 (tests/helpers/vocabulary.py has their rows)
RENAMED = {
    "task": "--task_checkpoints",
    "tasks": "--task_checkpoints",
    "base": "--base_model",
    "revision": "give the base's revision inline: --base_model NAME@REVISION",
    "base_revision": "give the base's revision inline: --base_model NAME@REVISION",
    "method": "--merge_method",
    "seed": "--dare_seed",
    "overwrite": "--overwrite_output_dir",
    "private": "--hub_private_repo",
    "progress": "--disable_tqdm",
    "no_progress": "--disable_tqdm",
}


def check_push_options(output: MergeOutputArguments, push: PushOptions) -> str | None:
    """The repo a push goes to (default: the output folder's name, in the token's namespace, as transformers does);
    push options without ``--push_to_hub`` are refused (they would be dropped)."""
    if not output.push_to_hub:
        given = [f"--{name}" for name, value in vars(push).items() if value != getattr(PushOptions(), name)]
        if given:
            raise OptionError(f"{', '.join(given)} only apply with --push_to_hub; add it or drop them")
        return None
    return push.hub_model_id or Path(output.output_dir or "").name or None


def run(
    sources: SourceArguments,
    method: MergeMethodArguments,
    output: MergeOutputArguments,
    hub: HubOptions,
    push: PushOptions,
) -> Path:
    """Merge into ``--output_dir``, print what was merged, push it if asked; returns the folder."""
    from ..merging import merge_from_arguments

    repo_id = check_push_options(output, push)  # before any work
    folder = merge_from_arguments(sources, method, output, hub)
    record = json.loads((folder / "config.json").read_text())["merge"]
    print(f"merged {len(record['sources'])} task(s) with {record['method']} (alpha={record['alpha']}) into {folder}")
    for source in [record["base"], *record["sources"]]:
        what = f"task {source['task']!r}" if "task" in source else "base"
        commit = f" @ {source['commit']}" if source.get("commit") else ""
        print(f"  {what}: {source['name_or_path']}{commit}")
    if repo_id is not None:
        from ..publishing import push_folder_to_hub

        info = push_folder_to_hub(folder, repo_id, token=hub.token, **push.push_kwargs())
        print(f"pushed to {repo_id}: {info.url}")
    return folder


class MergeCommand(Command):
    """`Command` plus what this verb needs: ``--task_checkpoints`` and ``--output_dir`` are required (exit 2 when
    missing, from the command line or the YAML file), and ``--push_to_hub ORG/NAME`` (the spelling of before issue 11)
    names the new pair."""

    def parse(self, argv: Sequence[str] | None = None) -> tuple[tuple[Any, ...], Any]:
        words = list(sys.argv[1:] if argv is None else argv)
        refuse_push_to_hub_with_a_repo(self.parser(), words)
        parsed, common = super().parse(words)
        sources, _, output = parsed[:3]
        missing = [
            name
            for name, given in (("--task_checkpoints", sources.task_checkpoints), ("--output_dir", output.output_dir))
            if not given
        ]
        if missing:  # required by this command only (the dataclasses are shared with verbs where they are optional)
            self.parser().error(f"the following arguments are required: {', '.join(missing)}")
        return parsed, common


DESCRIPTION = "Merge single-task checkpoints into one multi-task SimoModel folder (and push it to the Hub)."
COMMAND = MergeCommand("hf-simo merge", ARGUMENTS, run, renamed=RENAMED, description=DESCRIPTION)
RECIPE = MergeCommand("recipes/merge.py", ARGUMENTS, run, renamed=RENAMED, description=DESCRIPTION)
main = COMMAND.exit_code  # `hf-simo merge ...` / `python -m hf_simo.cli.merge ...`: the exit status
recipe_main = RECIPE.main  # `recipes/merge.py`: the merged folder, or SystemExit("error: ...")

__all__ = ["ARGUMENTS", "COMMAND", "HELP", "RECIPE", "RENAMED", "check_push_options", "main", "recipe_main", "run"]


if __name__ == "__main__":
    raise SystemExit(main())

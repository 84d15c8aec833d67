"""Publishing merged and re-aligned model folders to the Hugging Face Hub.

`push_folder_to_hub` checks everything it can locally before the first request: the folder must be a complete
`SimoModel` folder (config.json of model_type `simo`, safetensors weights matching it, preprocessor_config.json, a
README.md whose metadata parses), the repo id must be valid, and a token must be available (argument, `HF_TOKEN`,
or `hf auth login`). Then it goes through `huggingface_hub.HfApi`: `create_repo(exist_ok=True)`, `create_branch`
when a branch is asked for, and one `upload_folder` commit of exactly the files `files_to_push` lists (passed as
escaped `allow_patterns`, so what is committed is what was validated).

The token is handed to `HfApi` and nowhere else: it is never printed, logged, stored in the result or put in an
error message.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, ModelCard, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import filter_repo_objects, validate_repo_id

from .cards import card_kind
from .configuration_simo import SimoConfig
from .hub import PICKLE_PATTERNS, CheckpointError, safetensors_files


REQUIRED_FILES = ("config.json", "preprocessor_config.json", "README.md")
IGNORE_PATTERNS = (
    ".*",  # hidden files and folders at the top: .git, .cache, editor files, our atomic-write temporaries
    "*/.*",
    "__pycache__/*",
    "*/__pycache__/*",
    "*.tmp",
    "*.lock",
)
PICKLE_FILE_PATTERNS = (*PICKLE_PATTERNS, "*.pkl", "*.pickle")
COMMIT_MESSAGES = {
    "merged": "Upload merged SIMO model (hf_simo)",
    "realigned": "Upload re-aligned SIMO model (hf_simo)",
    "single-task": "Upload single-task model (hf_simo)",
    "multi-task": "Upload multi-task model (hf_simo)",
}
NO_TOKEN_MESSAGE = (
    "no Hugging Face token: pass token=..., set the HF_TOKEN environment variable, or run `hf auth login` "
    "(a token with write access to the target namespace)"
)


class PublishError(ValueError):
    """A folder cannot be pushed as asked; the message names what is wrong and how to fix it (one line)."""


@dataclasses.dataclass(frozen=True)
class PushResult:
    """Where the folder went. `commit_url`/`oid` are None for a dry run; `pr_url` is set with `create_pr=True`."""

    repo_id: str
    revision: str | None
    files: list[str]
    repo_url: str | None = None
    commit_url: str | None = None
    oid: str | None = None
    pr_url: str | None = None

    @property
    def url(self) -> str | None:
        """The pull request when one was opened, else the commit."""
        return self.pr_url or self.commit_url


def validate_model_folder(folder: str | os.PathLike) -> SimoConfig | None:
    """Check that `folder` is a complete `SimoModel` folder (config, weights, image processor, card) and return its
    config, or a DINOv2 encoder folder (config and weights; returns None). Every problem is reported at once."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"cannot push {folder}: not a folder (save the model with model.save_pretrained(folder))")
    problems: list[str] = []
    config: SimoConfig | None = None
    if not (folder / "config.json").is_file():
        problems.append("config.json is missing (save the model with model.save_pretrained(folder))")
    else:
        try:
            model_type = json.loads((folder / "config.json").read_text()).get("model_type")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
            model_type = None
            problems.append(f"config.json is not valid JSON ({err})")
        else:
            if model_type == "dinov2":  # a pre-trained encoder (θ_0): config and safetensors are all it needs
                try:
                    safetensors_files(folder, source=str(folder))
                except CheckpointError as err:
                    raise PublishError(f"cannot push {folder}: {_one_line(err)}") from err
                return None
            if model_type != "simo":
                problems.append(
                    f"config.json is a {model_type!r} config, not a SimoModel (model_type 'simo') or a DINOv2 encoder"
                )
            else:
                try:
                    config = SimoConfig.from_pretrained(folder)
                except Exception as err:  # noqa: BLE001 - any config error is reported, not raised raw
                    problems.append(f"config.json is not a valid SimoConfig ({_one_line(err)})")
    try:
        weights = safetensors_files(folder, source=str(folder))
    except CheckpointError as err:
        problems.append(_one_line(err))
    else:
        if config is not None:
            from .modeling_simo import SimoModel, check_checkpoint_matches_config

            try:
                check_checkpoint_matches_config(SimoModel, config, weights, str(folder))
            except CheckpointError as err:
                problems.append(_one_line(err))
    processor = folder / "preprocessor_config.json"
    if not processor.is_file():
        problems.append(
            "preprocessor_config.json is missing (SimoModel.save_pretrained writes it; or "
            "hf_simo.make_image_processor().save_pretrained(folder))"
        )
    else:
        try:
            json.loads(processor.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            problems.append(f"preprocessor_config.json is not valid JSON ({err})")
    readme = folder / "README.md"
    if not readme.is_file():
        problems.append("README.md is missing (write the model card with hf_simo.cards.write_model_card(folder))")
    else:
        try:
            card = ModelCard.load(readme)
        except Exception as err:  # noqa: BLE001 - invalid YAML or model-index
            problems.append(f"README.md metadata does not parse ({_one_line(err)})")
        else:
            if not card.data.to_dict():
                problems.append(
                    "README.md has no metadata block; write it with hf_simo.cards.write_model_card(folder)"
                )
    if problems:
        raise PublishError(f"cannot push {folder}: " + "; ".join(problems))
    return config


def files_to_push(folder: str | os.PathLike, allow_patterns: Sequence[str] | str | None = None) -> list[str]:
    """Relative paths (POSIX) of the files one push commits, sorted.

    Everything in the folder except hidden files/folders, caches, temporaries and pickle files (hf_simo publishes
    safetensors only; skipped pickles are reported with a warning), restricted to `allow_patterns` when given.
    """
    folder = Path(folder)
    relative = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    kept = list(filter_repo_objects(relative, allow_patterns=allow_patterns, ignore_patterns=list(IGNORE_PATTERNS)))
    pickles = list(filter_repo_objects(kept, allow_patterns=list(PICKLE_FILE_PATTERNS)))
    if pickles:
        warnings.warn(
            f"not pushing pickle file(s) {pickles}: hf_simo publishes safetensors only (unpickling runs code)",
            stacklevel=2,
        )
    return [f for f in kept if f not in set(pickles)]


def resolve_token(token: str | None = None) -> str:
    """`token`, else `HF_TOKEN`, else the token saved by `hf auth login`; a `PublishError` when there is none."""
    if token is not None and not isinstance(token, str):
        raise PublishError("token must be a string (a Hugging Face access token) or None")
    resolved = token or get_token()
    if not resolved:
        raise PublishError(NO_TOKEN_MESSAGE)
    return resolved


def push_folder_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    create_pr: bool = False,
    allow_patterns: Sequence[str] | str | None = None,
    dry_run: bool = False,
    api: HfApi | None = None,
) -> PushResult:
    """Upload a saved `SimoModel` folder (merged, re-aligned, or any other kind) to the Hub in one commit.

    Args:
        folder: the model folder (config.json, safetensors weights, preprocessor_config.json, README.md).
        repo_id: `org/name` (or `name` in your own namespace); created if missing.
        token: a write token; default `HF_TOKEN` or the `hf auth login` token. Never printed or stored.
        private: visibility of a *new* repo (an existing repo keeps its visibility).
        revision: a branch to commit to, created from `main` if missing; None = `main`.
        commit_message / commit_description: default message names the kind of model.
        create_pr: open a pull request against `main` instead of committing (not with `revision`).
        allow_patterns: restrict the files (`fnmatch` patterns on paths relative to `folder`); the required files
            must stay included.
        dry_run: validate and list the files, without token or network.
        api: the `HfApi` to use (default: `HfApi(token=token)`); tests pass a fake here.

    Returns:
        A `PushResult` with the committed files and the commit (or pull request) URL.
    """
    config = validate_model_folder(folder)
    folder = Path(folder)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PublishError(f"invalid repo id {repo_id!r}: {_one_line(err)}") from None
    if create_pr and revision not in (None, "main"):
        raise PublishError(
            f"create_pr=True opens a pull request against main; it cannot be combined with revision={revision!r}"
        )
    files = files_to_push(folder, allow_patterns)
    required = REQUIRED_FILES if config is not None else ("config.json",)  # None: a DINOv2 encoder folder
    excluded = [name for name in required if name not in files]
    weights = [f for f in files if f.endswith(".safetensors")]
    if excluded or not weights:
        what = excluded + ([] if weights else ["the safetensors weights"])
        raise PublishError(f"allow_patterns {allow_patterns!r} leaves out required file(s) {what}")
    revision = None if revision in (None, "main") else revision
    if dry_run:
        return PushResult(repo_id=repo_id, revision=revision, files=files)

    token = resolve_token(token)
    api = api if api is not None else HfApi(token=token)
    kind = card_kind(config) if config is not None else None
    message = commit_message or COMMIT_MESSAGES.get(kind, "Upload DINOv2 encoder (hf_simo)")
    step = "repository creation"
    try:
        repo_url = api.create_repo(repo_id, token=token, private=private, exist_ok=True, repo_type="model")
        repo_id = getattr(repo_url, "repo_id", None) or repo_id
        if revision is not None:
            step = f"creation of branch {revision!r}"
            api.create_branch(repo_id, branch=revision, token=token, exist_ok=True, repo_type="model")
        step = "upload"
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            revision=revision,
            commit_message=message,
            commit_description=commit_description,
            create_pr=create_pr or None,
            allow_patterns=[glob.escape(name) for name in files],
            token=token,
            repo_type="model",
        )
    except HfHubHTTPError as err:
        raise PublishError(f"the Hub refused the {step} for {repo_id!r}: {_one_line(err)}") from err
    return PushResult(
        repo_id=repo_id,
        revision=revision,
        files=files,
        repo_url=str(repo_url) if repo_url is not None else None,
        commit_url=getattr(info, "commit_url", None),
        oid=getattr(info, "oid", None),
        pr_url=getattr(info, "pr_url", None),
    )


def _one_line(err: Any) -> str:
    return " ".join(str(err).split())


__all__ = [
    "IGNORE_PATTERNS",
    "NO_TOKEN_MESSAGE",
    "PublishError",
    "PushResult",
    "REQUIRED_FILES",
    "files_to_push",
    "push_folder_to_hub",
    "resolve_token",
    "validate_model_folder",
]

"""Publishing merged and re-aligned model folders to the Hugging Face Hub.

Every way of publishing goes through `push_folder_to_hub`: `hf-simo push`, `hf-simo merge --push_to_hub`, the
recipes' `--push_to_hub`, `SimoModel.save_pretrained(dir, push_to_hub=True)` and `SimoModel.push_to_hub` (which
saves into a temporary folder first, as transformers does, through `push_model_to_hub`). So each uploads the same
complete folder: config, safetensors, image processor and hf_simo's card (`library_name: hf_simo`, `model-index`).

It checks everything it can locally before the first request: hf_simo's card is written when the README is missing,
is transformers' generic card or describes another config (`hf_simo.cards.card_needs_writing`; a card the user
wrote is kept), the folder must be a complete `SimoModel` folder (config.json of model_type `simo`, safetensors
weights matching it, preprocessor_config.json, a README.md whose metadata parses), the repo id must be valid, and a
token must be available (argument, `HF_TOKEN`, or `hf auth login`). Then it goes through `huggingface_hub.HfApi`:
`create_repo(exist_ok=True)`, `create_branch` when a branch is asked for, and one `create_commit` adding exactly the
files `files_to_push` lists (what is committed is what was validated).
When the Hub cannot be reached (offline mode, no network) or refuses a step, a one-line `PublishError` names the
repo, the reason, and where the model stays saved.

The token is handed to `HfApi` and nowhere else: it is never printed, logged, stored in the result or put in an
error message (any message is scrubbed of it, whatever the library said).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi, get_token
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from .cards import card_kind, card_needs_writing, is_hub_id, refresh_model_card
from .configuration_simo import SimoConfig
from .errors import PublishError
from .model_folder import IGNORE_PATTERNS, REQUIRED_FILES, files_to_push, kept_by_patterns, validate_model_folder


COMMIT_MESSAGES = {
    "merged": "Upload merged SIMO model (hf_simo)",
    "realigned": "Upload re-aligned SIMO model (hf_simo)",
    "single-task": "Upload single-task model (hf_simo)",
    "multi-task": "Upload multi-task model (hf_simo)",
}


def _unreachable_errors() -> tuple[type[BaseException], ...]:
    """What the HTTP stack raises when the Hub cannot be reached at all (as opposed to an HTTP error answer):
    offline mode, and the transport errors of whichever HTTP client huggingface_hub uses (httpx2 in 2.x)."""
    errors: list[type[BaseException]] = [OfflineModeIsEnabled, ConnectionError, TimeoutError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


UNREACHABLE_ERRORS = _unreachable_errors()
NO_TOKEN_MESSAGE = (
    "no Hugging Face token: pass token=..., set the HF_TOKEN environment variable, or run `hf auth login` "
    "(a token with write access to the target namespace)"
)


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
        folder: the model folder (config.json, safetensors weights, preprocessor_config.json, README.md). A missing
            or generic README is replaced by hf_simo's card first (not in a dry run).
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
    return _push(
        folder,
        repo_id,
        token=token,
        private=private,
        revision=revision,
        commit_message=commit_message,
        commit_description=commit_description,
        create_pr=create_pr,
        allow_patterns=allow_patterns,
        dry_run=dry_run,
        api=api,
        saved_at=Path(folder),
    )


def push_model_to_hub(
    model: Any,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    create_pr: bool = False,
    max_shard_size: int | str | None = "50GB",
    tags: Sequence[str] | None = None,
    api: HfApi | None = None,
) -> PushResult:
    """`SimoModel.push_to_hub`: save into a temporary folder (weights, image processor, hf_simo's card naming
    `repo_id`), keep the repo's README if its owner wrote it (or it is hf_simo's card of this config), then
    `push_folder_to_hub`. Nothing stays on disk."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PublishError(f"invalid repo id {repo_id!r}: {_one_line(err)}") from None
    token = resolve_token(token)
    api = api if api is not None else HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="hf_simo_push_") as tmp:
        card = {"repo_id": repo_id if "/" in repo_id else None, "tags": list(tags or []) or None}
        model.save_pretrained(tmp, max_shard_size=max_shard_size, model_card=card)
        remote = _remote_readme(api, repo_id, revision, token)
        if remote is not None and not card_needs_writing(remote, model.config):
            (Path(tmp) / "README.md").write_text(remote, encoding="utf-8")
        return _push(
            tmp,
            repo_id,
            token=token,
            private=bool(private),
            revision=revision,
            commit_message=commit_message,
            commit_description=commit_description,
            create_pr=create_pr,
            allow_patterns=None,
            dry_run=False,
            api=api,
            saved_at=None,
        )


def _remote_readme(api: HfApi, repo_id: str, revision: str | None, token: str) -> str | None:
    """The README.md the repo holds now, or None for a new repo (or one without a card)."""
    try:
        path = api.hf_hub_download(repo_id, "README.md", revision=revision, token=token, repo_type="model")
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError):
        return None
    except UNREACHABLE_ERRORS as err:
        raise PublishError(_unreachable(repo_id, err, None, token)) from None
    except HfHubHTTPError as err:
        raise PublishError(f"the Hub refused to read the card of {repo_id!r}: {_scrub(err, token)}") from None
    return Path(path).read_text(encoding="utf-8", errors="replace")


def _push(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None,
    private: bool,
    revision: str | None,
    commit_message: str | None,
    commit_description: str | None,
    create_pr: bool,
    allow_patterns: Sequence[str] | str | None,
    dry_run: bool,
    api: HfApi | None,
    saved_at: Path | None,
) -> PushResult:
    folder = Path(folder)
    card_pending = False
    if folder.is_dir() and _is_simo_folder(folder):
        try:
            readme = folder / "README.md"
            text = readme.read_text(encoding="utf-8", errors="replace") if readme.is_file() else None
            card_pending = card_needs_writing(text, SimoConfig.from_pretrained(folder))
            if card_pending and not dry_run:
                refresh_model_card(folder, repo_id=repo_id if is_hub_id(repo_id) else None)
                card_pending = False
        except Exception:  # noqa: BLE001 - an invalid config is reported by the validation below
            card_pending = False
    config = validate_model_folder(folder, card_pending=card_pending)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PublishError(f"invalid repo id {repo_id!r}: {_one_line(err)}") from None
    if create_pr and revision not in (None, "main"):
        raise PublishError(
            f"create_pr=True opens a pull request against main; it cannot be combined with revision={revision!r}"
        )
    files = files_to_push(folder, allow_patterns)
    if card_pending and "README.md" not in files and "README.md" in kept_by_patterns(allow_patterns):
        files = sorted([*files, "README.md"])  # a dry run lists the card the real push writes
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
        info = api.create_commit(
            repo_id=repo_id,
            operations=[CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in files],
            revision=revision,
            commit_message=message,
            commit_description=commit_description,
            create_pr=create_pr or None,
            token=token,
            repo_type="model",
        )
    except UNREACHABLE_ERRORS as err:
        raise PublishError(_unreachable(repo_id, err, saved_at, token)) from None
    except HfHubHTTPError as err:
        kept = f"; the model stays in {saved_at}" if saved_at is not None else ""
        raise PublishError(f"the Hub refused the {step} for {repo_id!r}: {_scrub(err, token)}{kept}") from None
    return PushResult(
        repo_id=repo_id,
        revision=revision,
        files=files,
        repo_url=str(repo_url) if repo_url is not None else None,
        commit_url=getattr(info, "commit_url", None),
        oid=getattr(info, "oid", None),
        pr_url=getattr(info, "pr_url", None),
    )


def _is_simo_folder(folder: Path) -> bool:
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type") == "simo"
    except (OSError, ValueError, AttributeError):
        return False  # validation reports it


def _unreachable(repo_id: str, err: BaseException, saved_at: Path | None, token: str | None) -> str:
    """One line: which repo could not be reached, why, and where the model stays."""
    if isinstance(err, OfflineModeIsEnabled):
        why = "offline mode is on (HF_HUB_OFFLINE=1); unset it to publish"
    else:
        why = f"no connection ({type(err).__name__}: {_scrub(err, token) or 'no details'})"
    where = (
        f"; the model stays in {saved_at}: push it later with `hf-simo push {saved_at} {repo_id}`"
        if saved_at is not None
        else ""
    )
    return f"could not reach the Hugging Face Hub to push to {repo_id!r}: {why}{where}"


def _scrub(err: Any, token: str | None) -> str:
    """The error in one line, with the token (should a library ever echo it) masked."""
    text = _one_line(err)
    return text.replace(token, "***") if token else text


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
    "push_model_to_hub",
    "resolve_token",
    "validate_model_folder",
]

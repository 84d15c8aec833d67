"""Finding checkpoints: Hub repo ids (with revisions, tokens, the cache, offline mode) or local folders.

Everything that touches the Hub for *reading* goes through `resolve_repo`, which downloads only configs and
safetensors (never pickles unless asked) and records the commit a source resolved to, so merged models can say
exactly which checkpoints they were built from.

The Hub options travel as two carriers instead of keyword sets threaded through every signature (and they are the
command-line options of every verb that reads or pushes, in transformers' spelling):

- `HubOptions` (``--token``, ``--cache_dir``, ``--local_files_only``, ``--allow_pickle``): how sources are read;
  ``resolve_repo(source, hub=HubOptions(...))``;
- `PushOptions` (``--hub_model_id``, ``--hub_private_repo``, ``--hub_revision``, ``--commit_message``,
  ``--create_pr``): where and how a result is pushed (`hf_simo.publishing`; the token is `HubOptions.token`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CheckpointError, UnsafeCheckpointError
from .utils.fields import option


SAFETENSORS_PATTERNS = ["*.json", "*.safetensors", "*.md"]
PICKLE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.ckpt"]
SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class HubOptions:
    """How checkpoints and datasets are read from the Hub (every verb that reads sources takes these options)."""

    token: str | None = option(
        None, "Hugging Face token (default: HF_TOKEN or the `hf auth login` one); never printed or stored."
    )
    cache_dir: str | None = option(None, "Hugging Face cache folder (default: $HF_HUB_CACHE).")
    local_files_only: bool = option(False, "Use the local Hugging Face cache only; never download.")
    allow_pickle: bool = option(
        False, "Allow .bin/.pt (pickle) checkpoints: unpickling can run code, so only for checkpoints you trust."
    )

    def download_kwargs(self) -> dict[str, Any]:
        """The keywords of `huggingface_hub.snapshot_download` / `from_pretrained` these options set."""
        return {"token": self.token, "cache_dir": self.cache_dir, "local_files_only": self.local_files_only}

    def model_kwargs(self) -> dict[str, Any]:
        """The keywords of `SimoModel.from_pretrained` / `from_backbone` / `from_task_source` these options set (the
        download ones and `allow_pickle`)."""
        return {**self.download_kwargs(), "allow_pickle": self.allow_pickle}


@dataclass
class PushOptions:
    """Where and how a result is pushed to the Hub (transformers' `TrainingArguments` spelling); whether to push is
    the job's own ``--push_to_hub`` flag, the token is `HubOptions.token`."""

    hub_model_id: str | None = option(None, "The Hub repo to push to, ORG/NAME.")
    hub_private_repo: bool = option(False, "Create the Hub repo as private.")
    hub_revision: str | None = option(None, "Branch of the Hub repo to commit to (created if missing).")
    commit_message: str | None = option(None, "Commit message of the push.")
    create_pr: bool = option(False, "Open a pull request instead of committing to the branch.")

    def push_kwargs(self) -> dict[str, Any]:
        """The keywords of `hf_simo.publishing.push_folder_to_hub` these options set (not the repo id)."""
        return {
            "private": self.hub_private_repo,
            "revision": self.hub_revision,
            "commit_message": self.commit_message,
            "create_pr": self.create_pr,
        }


@dataclass(frozen=True)
class ResolvedRepo:
    """A checkpoint available on local disk, with where it came from."""

    path: Path
    name_or_path: str
    revision: str | None = None
    commit: str | None = None

    @property
    def is_local(self) -> bool:
        return self.commit is None and self.revision is None and Path(self.name_or_path).is_dir()

    def describe(self) -> str:
        if self.commit:
            return f"{self.name_or_path}@{self.commit[:12]}"
        return self.name_or_path


def snapshot_download(*args: Any, **kwargs: Any) -> str:
    """`huggingface_hub.snapshot_download`, imported when a source is read: the verbs import this module for
    `HubOptions`, and their ``--help`` needs no Hub client (huggingface_hub and httpx: 0.4 s)."""
    from huggingface_hub import snapshot_download as download

    return download(*args, **kwargs)


def split_revision(source: str) -> tuple[str, str | None]:
    """`org/name@v1` -> (`org/name`, `v1`). Local paths are returned unchanged, even if they contain '@'."""
    if os.path.exists(source) or "@" not in source:
        return source, None
    name, _, revision = source.rpartition("@")
    if not name or not revision:
        raise CheckpointError(f"cannot parse source {source!r}; expected 'org/name', 'org/name@revision' or a folder")
    return name, revision


def resolve_repo(
    name_or_path: str | os.PathLike,
    revision: str | None = None,
    *,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    allow_pickle: bool = False,
    allow_patterns: list[str] | None = None,
    hub: HubOptions | None = None,
    repo_type: str = "model",
) -> ResolvedRepo:
    """A local folder as is, or a Hub repo downloaded (configs and safetensors only) into the HF cache.

    Honours `HF_HUB_OFFLINE`, `HF_HUB_CACHE` and `HF_TOKEN` like every huggingface_hub call. The token is passed
    through and never stored or printed. `hub`: the Hub options as one `HubOptions` (instead of the keywords).
    `repo_type`: "dataset" for a dataset repo (then pass the `allow_patterns` of its files).
    """
    if hub is not None:
        if token is not None or cache_dir is not None or local_files_only or allow_pickle:
            raise TypeError("resolve_repo: give the Hub options either as hub=HubOptions(...) or as keywords")
        token, cache_dir, local_files_only, allow_pickle = (
            hub.token,
            hub.cache_dir,
            hub.local_files_only,
            hub.allow_pickle,
        )
    name_or_path = os.fspath(name_or_path)
    if revision is None:
        name_or_path, revision = split_revision(name_or_path)
    if os.path.isdir(name_or_path):
        if revision is not None:
            raise CheckpointError(
                f"{name_or_path!r} is a local folder; a revision ({revision!r}) only applies to Hub repos"
            )
        return ResolvedRepo(path=Path(name_or_path), name_or_path=name_or_path)
    if os.path.exists(name_or_path):
        raise CheckpointError(f"{name_or_path!r} is a file; pass the folder that holds config.json and the weights")
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    patterns = list(allow_patterns or SAFETENSORS_PATTERNS)
    if allow_pickle:
        patterns += PICKLE_PATTERNS
    try:
        path = snapshot_download(
            name_or_path,
            revision=revision,
            token=token,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            allow_patterns=patterns,
            repo_type=repo_type,
        )
    except RevisionNotFoundError as err:
        raise CheckpointError(f"{name_or_path!r}: revision {revision!r} not found ({err.__class__.__name__})") from err
    except RepositoryNotFoundError as err:
        raise CheckpointError(
            f"{name_or_path!r} is neither a local folder nor a Hub repo you can access; check the name, or log in "
            "(`hf auth login`) for a private repo"
        ) from err
    except LocalEntryNotFoundError as err:
        cached = cached_revisions(name_or_path, cache_dir, repo_type) if revision is not None else []
        if cached:
            raise CheckpointError(
                f"{name_or_path!r}: revision {revision!r} is not in the offline Hugging Face cache (it holds "
                f"{', '.join(cached)}) and the Hub cannot be reached (offline mode or no network); download that "
                "revision first or use a cached one"
            ) from err
        what = f"{name_or_path!r}" + (f" (revision {revision!r})" if revision is not None else "")
        raise CheckpointError(
            f"{what} is not a local folder and is not in the Hugging Face cache, and the Hub cannot be "
            "reached (offline mode or no network); download it first or pass a local folder"
        ) from err
    except HFValidationError as err:
        raise CheckpointError(
            f"{name_or_path!r} is neither a local folder nor a valid Hub repo id ('org/name'); check the path"
        ) from err
    except HfHubHTTPError as err:
        raise CheckpointError(f"{name_or_path!r}: the Hub refused the download ({err.__class__.__name__})") from err
    path = Path(path)
    commit = path.name if path.parent.name == "snapshots" and _COMMIT_RE.match(path.name) else None
    return ResolvedRepo(path=path, name_or_path=name_or_path, revision=revision, commit=commit)


def cached_revisions(repo_id: str, cache_dir: str | os.PathLike | None = None, repo_type: str = "model") -> list[str]:
    """The refs (branches, tags) and short commits of a repo in the Hugging Face cache; [] if it has none."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir)
    except (CacheNotFound, OSError):
        return []
    for repo in info.repos:
        if repo.repo_id == repo_id and repo.repo_type == repo_type:
            refs = sorted(repo.refs)
            commits = sorted(r.commit_hash[:12] for r in repo.revisions if not r.refs)
            return refs + commits
    return []


def safetensors_files(
    folder: str | os.PathLike, *, source: str | None = None, allow_pickle: bool = False
) -> list[Path]:
    """The safetensors weight files of a checkpoint folder (one file or the shards of an index).

    Raises `UnsafeCheckpointError` for a folder holding only pickle weights unless `allow_pickle`, in which case
    an empty list tells the caller to use its pickle path.
    """
    folder = Path(folder)
    source = source or str(folder)
    index = folder / SAFE_WEIGHTS_INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as err:
            raise CheckpointError(
                f"{source}: {SAFE_WEIGHTS_INDEX_NAME} is not a valid safetensors index ({err})"
            ) from err
        files = [folder / name for name in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{source}: shards listed in {SAFE_WEIGHTS_INDEX_NAME} are missing: {missing}")
        return files
    if (folder / SAFE_WEIGHTS_NAME).is_file():
        return [folder / SAFE_WEIGHTS_NAME]
    others = sorted(p.name for p in folder.glob("*.safetensors"))
    if len(others) == 1:
        return [folder / others[0]]
    pickles = sorted(p.name for pattern in PICKLE_PATTERNS for p in folder.glob(pattern))
    if pickles:
        if allow_pickle:
            return []
        raise UnsafeCheckpointError(
            f"{source} only has pickle weights ({', '.join(pickles)}); hf_simo loads safetensors only because "
            "unpickling can run arbitrary code. Convert the checkpoint to safetensors, or pass allow_pickle=True "
            "(CLI: --allow_pickle) if you trust its author."
        )
    raise CheckpointError(
        f"{source} has no weights: expected {SAFE_WEIGHTS_NAME} or {SAFE_WEIGHTS_INDEX_NAME}. If it is a Hub repo "
        "with only pickle (.bin) weights, those were not downloaded on purpose: pass allow_pickle=True "
        "(CLI: --allow_pickle) if you trust its author, or convert it to safetensors."
    )


def tensor_shapes(files, source: str | None = None) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, read from the headers of safetensors `files` (no tensor data is loaded); the one reader
    of weight headers (checkpoint checks, card parameter counts). A file that is not readable safetensors is a
    `CheckpointError` naming `source`."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        file = Path(file)
        try:
            with safe_open(str(file), framework="numpy") as handle:
                for key in handle.keys():
                    shapes[key] = tuple(handle.get_slice(key).get_shape())
        except Exception as err:  # safetensors raises its own error types for truncated/corrupt files
            raise CheckpointError(
                f"{source or file.parent}: {file.name} is not a readable safetensors file ({err})"
            ) from err
    return shapes


__all__ = [
    "CheckpointError",
    "HubOptions",
    "PushOptions",
    "ResolvedRepo",
    "cached_revisions",
    "UnsafeCheckpointError",
    "resolve_repo",
    "safetensors_files",
    "split_revision",
    "tensor_shapes",
]

"""The offline Hub in tests: a hand-built Hugging Face cache, a fake `HfApi` recording pushes, and
`forbid_hub_calls`, which makes any download attempt fail loudly where hf_simo and huggingface_hub look it up."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest


def write_hub_cache(folder: str | os.PathLike, repo_id: str, revision: str = "main", commit: str | None = None) -> str:
    """Copy a saved model folder into the offline HF cache as `repo_id` at `revision`; returns the commit id.

    Same layout as huggingface_hub's cache: `models--org--name/refs/<revision>` holds a 40-hex commit and
    `snapshots/<commit>/` the files.
    """
    commit = commit or hashlib.sha1(f"{repo_id}@{revision}:{folder}".encode()).hexdigest()
    repo_dir = Path(os.environ["HF_HUB_CACHE"]) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / commit
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(folder, snapshot)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / revision).write_text(commit)
    return commit


def read_json(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())


class FakeHfApi:
    """Records the calls the push makes, and the files present in the folder when it is uploaded."""

    calls: list = []

    def __init__(self, token=None):
        FakeHfApi.calls.append(("init", {"token": token}))

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def create_commit(self, *, repo_id, operations, **kwargs):
        files = sorted(op.path_in_repo for op in operations)  # what the commit adds
        assert all(Path(op.path_or_fileobj).is_file() for op in operations)
        FakeHfApi.calls.append(("create_commit", {"repo_id": repo_id, "files": files, **kwargs}))

        class Info:
            commit_url = f"https://huggingface.co/{repo_id}/commit/0123"

        return Info()


class HubCallForbidden(AssertionError):
    """Raised by `forbid_hub_calls` when guarded code tries to reach the Hub."""


def forbid_hub_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every Hub download attempt raise `HubCallForbidden`; returns the list of attempts (for assertions).

    Patches the names where they are looked up: `hf_simo.hub.snapshot_download` (hf_simo's one read boundary:
    `resolve_repo`), huggingface_hub's own `snapshot_download` / `hf_hub_download` (what transformers, datasets and
    late importers call), and, as a backstop for anything else, the HTTP client huggingface_hub sends requests
    with. A test that uses it should also check the guard fires (`resolve_repo("org/x")` raises) so it can fail.
    """
    import httpx2  # the HTTP client huggingface_hub sends every request with
    import huggingface_hub
    import huggingface_hub.file_download

    import hf_simo.hub

    calls: list[str] = []

    def refuse(what):
        def guard(*args, **kwargs):
            calls.append(f"{what}({args[0] if args else kwargs.get('repo_id', '')!r})")
            raise HubCallForbidden(f"a Hub call was attempted: {calls[-1]}")

        return guard

    monkeypatch.setattr(hf_simo.hub, "snapshot_download", refuse("snapshot_download"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse("snapshot_download"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse("hf_hub_download"))
    monkeypatch.setattr(huggingface_hub.file_download, "hf_hub_download", refuse("hf_hub_download"))
    monkeypatch.setattr(httpx2.Client, "send", refuse("http"))
    return calls

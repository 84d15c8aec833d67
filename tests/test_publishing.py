"""Pushing model folders: exactly which files are committed (at a fake `HfApi`), branches and pull requests, the
token rules, folder validation, and loading what was pushed back through an offline HF cache."""

import json
import os
import shutil
import uuid

import pytest
import torch
from huggingface_hub import CommitInfo, ModelCard
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.hf_api import RepoUrl

import hf_simo.publishing as publishing
from helpers.hub import write_hub_cache
from helpers.tiny import tiny_model
from hf_simo import SimoModel
from hf_simo.cards import write_model_card
from hf_simo.publishing import PublishError, files_to_push, push_folder_to_hub, validate_model_folder


TASKS = {"segmentation": {"kind": "semantic_segmentation", "num_outputs": 3}, "depth": {"kind": "depth"}}
MERGE = {
    "method": "task_arithmetic",
    "alpha": 0.4,
    "sources": [{"task": "segmentation", "name_or_path": "org/a"}, {"task": "depth", "name_or_path": "org/b"}],
}
TOKEN = "hf_FAKEtokenThatMustNeverAppear0123"
MODEL_FILES = {"README.md", "config.json", "model.safetensors", "preprocessor_config.json"}


class Forbidden(HfHubHTTPError):
    """An HTTP error as the Hub raises it, without building a real HTTP response."""

    def __init__(self, message: str):
        Exception.__init__(self, message)


class FakeHfApi:
    """Records calls; `create_commit` records the files its operations add (what the Hub would hold)."""

    def __init__(self, fail_on: str | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.committed: list[str] = []
        self.fail_on = fail_on

    def _record(self, name, kwargs):
        self.calls.append((name, kwargs))
        if name == self.fail_on:
            raise Forbidden("403 Forbidden: you do not have write access to this namespace")

    def create_repo(self, repo_id, **kwargs):
        self._record("create_repo", {"repo_id": repo_id, **kwargs})
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_branch(self, repo_id, **kwargs):
        self._record("create_branch", {"repo_id": repo_id, **kwargs})

    def create_commit(self, *, repo_id, operations, **kwargs):
        self._record("create_commit", {"repo_id": repo_id, "operations": operations, **kwargs})
        for op in operations:  # each local file exists and is what the repo path names
            assert os.path.isfile(op.path_or_fileobj) and op.path_or_fileobj.endswith(op.path_in_repo)
        self.committed = sorted(op.path_in_repo for op in operations)
        pr = "https://huggingface.co/org/x/discussions/1" if kwargs.get("create_pr") else None
        return CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/{'1' * 40}",
            commit_message=kwargs.get("commit_message"),
            commit_description="",
            oid="1" * 40,
            pr_url=pr,
        )


@pytest.fixture
def folder(tmp_path):
    """A complete merged-model folder plus files that must (plots) and must not (.git, temporaries, pickles) go."""
    model = tiny_model(TASKS)
    model.config.merge = MERGE
    path = tmp_path / "merged"
    model.save_pretrained(path)
    write_model_card(path, model, eval_results={"depth": {"abs_err": 0.3}}, dataset_name="toy")
    (path / "plots").mkdir()
    (path / "plots" / "relationships.png").write_bytes(b"\x89PNG fake")
    (path / ".git").mkdir()
    (path / ".git" / "config").write_text("[core]")
    (path / ".README.md.abc.tmp").write_text("half-written")
    (path / "optimizer.pt").write_bytes(b"pickle")
    (path / "plots" / "__pycache__").mkdir()
    (path / "plots" / "__pycache__" / "x.pyc").write_bytes(b"")
    return path


@pytest.fixture
def no_token(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)


def test_push_commits_exactly_the_model_files(folder):
    api = FakeHfApi()
    with pytest.warns(UserWarning, match=r"not pushing pickle file\(s\) \['optimizer.pt'\]"):
        result = push_folder_to_hub(folder, "org/merged", token=TOKEN, private=True, api=api)
    assert set(api.committed) == MODEL_FILES | {"plots/relationships.png"}
    assert result.files == sorted(api.committed)
    assert [name for name, _ in api.calls] == ["create_repo", "create_commit"]
    create, upload = api.calls[0][1], api.calls[1][1]
    assert create["exist_ok"] is True and create["private"] is True and create["token"] == TOKEN
    assert upload["revision"] is None and upload["token"] == TOKEN and not upload["create_pr"]
    assert upload["commit_message"] == "Upload merged SIMO model (hf_simo)"
    assert result.url == f"https://huggingface.co/org/merged/commit/{'1' * 40}" and result.oid == "1" * 40
    assert TOKEN not in repr(result)


def test_branch_pull_request_and_allow_patterns(folder):
    api = FakeHfApi()
    result = push_folder_to_hub(
        folder,
        "org/merged",
        token=TOKEN,
        revision="exp-1",
        api=api,
        allow_patterns=["*.json", "*.safetensors", "*.md"],
        commit_message="try TIES",
    )
    assert [name for name, _ in api.calls] == ["create_repo", "create_branch", "create_commit"]
    assert api.calls[1][1]["branch"] == "exp-1" and api.calls[1][1]["exist_ok"] is True
    assert api.calls[2][1]["revision"] == "exp-1" and api.calls[2][1]["commit_message"] == "try TIES"
    assert set(api.committed) == MODEL_FILES and result.revision == "exp-1"

    api = FakeHfApi()
    with pytest.warns(UserWarning, match="optimizer.pt"):
        result = push_folder_to_hub(folder, "org/merged", token=TOKEN, create_pr=True, api=api, allow_patterns="*[!g]")
    assert api.calls[-1][1]["create_pr"] is True and result.url.endswith("/discussions/1")
    assert set(api.committed) == MODEL_FILES  # the .png is excluded by the pattern
    with pytest.raises(PublishError, match="cannot be combined with revision='exp'"):
        push_folder_to_hub(folder, "org/merged", token=TOKEN, create_pr=True, revision="exp", api=FakeHfApi())
    with pytest.raises(PublishError, match=r"leaves out required file\(s\) \['README.md'\]"):
        push_folder_to_hub(
            folder, "org/merged", token=TOKEN, allow_patterns=["*.json", "*.safetensors"], api=FakeHfApi()
        )


def test_without_token_fails_before_any_hub_call(folder, no_token, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("HfApi must not be created without a token")

    monkeypatch.setattr(publishing, "HfApi", no_network)
    assert publishing.get_token() is None  # HF_HOME is a fresh temporary folder and HF_TOKEN is unset
    with pytest.raises(PublishError) as info, pytest.warns(UserWarning, match="optimizer.pt"):
        push_folder_to_hub(folder, "org/merged")
    message = str(info.value)
    assert "\n" not in message and "no Hugging Face token" in message
    assert "HF_TOKEN" in message and "hf auth login" in message
    # a dry run needs no token and lists the files
    dry = push_folder_to_hub(folder, "org/merged", dry_run=True, allow_patterns=["*.json", "*.safetensors", "*.md"])
    assert set(dry.files) == MODEL_FILES and dry.commit_url is None


def test_token_from_environment_and_hub_errors_never_show_it(folder, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    api = FakeHfApi(fail_on="create_commit")
    with pytest.raises(PublishError, match="refused the upload for 'org/merged': 403") as info:
        push_folder_to_hub(folder, "org/merged", api=api, allow_patterns=["*.json", "*.safetensors", "*.md"])
    assert api.calls[0][1]["token"] == TOKEN  # picked up from HF_TOKEN
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    with pytest.raises(PublishError, match="invalid repo id"):
        push_folder_to_hub(folder, "org/has spaces", api=FakeHfApi())


def test_incomplete_folders_are_refused_with_every_problem(folder, tmp_path):
    (folder / "preprocessor_config.json").unlink()
    (folder / "model.safetensors").rename(folder / "weights.bak")
    with pytest.raises(PublishError) as info:
        push_folder_to_hub(folder, "org/merged", token=TOKEN, api=FakeHfApi())
    message = str(info.value)
    assert "preprocessor_config.json is missing" in message and "pickle weights" in message and "\n" not in message
    (folder / "weights.bak").rename(folder / "model.safetensors")
    (folder / "README.md").unlink()
    with pytest.raises(PublishError, match="README.md is missing"):
        validate_model_folder(folder)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PublishError, match="config.json is missing.*has no weights"):
        validate_model_folder(empty)
    with pytest.raises(PublishError, match="not a folder"):
        validate_model_folder(tmp_path / "nowhere")
    vit = tmp_path / "vit"
    shutil.copytree(folder, vit)
    (vit / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(PublishError, match="a 'vit' config, not a SimoModel"):
        validate_model_folder(vit)
    (folder / "model.safetensors").unlink()
    (folder / "model.bin").write_bytes(b"pickle")
    with pytest.raises(PublishError, match="only has pickle weights"):
        validate_model_folder(folder)


def test_weights_that_do_not_match_the_config_and_bad_cards(folder):
    config = json.loads((folder / "config.json").read_text())
    config["tasks"]["normals"] = {
        **config["tasks"]["depth"],
        "kind": "surface_normals",
        "num_outputs": 3,
        "loss": "cosine",
        "metric": "mean_angle",
    }
    config["task_order"] = [*config["task_order"], "normals"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PublishError, match="task 'normals' is in the config but its head has no weights"):
        validate_model_folder(folder)
    config["tasks"].pop("normals")
    config["task_order"].remove("normals")
    (folder / "config.json").write_text(json.dumps(config))
    validate_model_folder(folder)
    (folder / "README.md").write_text("---\nmodel-index: [{name: x, results: [{task: {}}]}]\n---\n# card\n")
    with pytest.raises(PublishError, match="README.md metadata does not parse"):
        validate_model_folder(folder)
    (folder / "README.md").write_text("# a card without metadata\n")
    with pytest.raises(PublishError, match="README.md has no metadata block"):
        validate_model_folder(folder)


def test_pushed_files_load_back_from_an_offline_hub_cache(folder, tmp_path, hub_cache):
    api = FakeHfApi()
    push_folder_to_hub(folder, "org/merged", token=TOKEN, api=api, allow_patterns=["*.json", "*.safetensors", "*.md"])
    remote = tmp_path / "remote"  # what the Hub would hold: exactly the committed files
    for name in api.committed:
        (remote / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / name, remote / name)
    commit = write_hub_cache(remote, "org/merged")
    loaded = SimoModel.from_pretrained("org/merged").eval()
    assert loaded.config.merge == MERGE and loaded.config.name_or_path == "org/merged"
    original = SimoModel.from_pretrained(folder).eval()
    pixels = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = original(pixels).predictions, loaded(pixels).predictions
    assert all(torch.equal(expected[t], got[t]) for t in TASKS)
    card = ModelCard.load(hub_cache / "models--org--merged" / "snapshots" / commit / "README.md")
    assert card.data.library_name == "hf_simo" and card.data.eval_results[0].metric_value == 0.3
    assert files_to_push(remote) == sorted(api.committed)


@pytest.mark.hub
@pytest.mark.skipif(not os.environ.get("HF_TOKEN"), reason="opt-in: needs HF_TOKEN and network (pytest -m hub)")
def test_push_to_the_real_hub_and_load_back(folder, monkeypatch):
    from huggingface_hub import HfApi, constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # conftest enables offline mode for every other test
    api = HfApi(token=os.environ["HF_TOKEN"])
    repo_id = f"{api.whoami()['name']}/hf-simo-test-{uuid.uuid4().hex[:8]}"
    try:
        result = push_folder_to_hub(folder, repo_id, private=True, allow_patterns=["*.json", "*.safetensors", "*.md"])
        assert set(result.files) == MODEL_FILES and result.commit_url
        assert set(api.list_repo_files(repo_id)) >= MODEL_FILES
        loaded = SimoModel.from_pretrained(repo_id, token=os.environ["HF_TOKEN"])
        assert loaded.config.merge == MERGE
        branch = push_folder_to_hub(
            folder, repo_id, revision="exp", allow_patterns=["*.json", "*.safetensors", "*.md"]
        )
        assert branch.revision == "exp"
        assert SimoModel.from_pretrained(repo_id, revision="exp", token=os.environ["HF_TOKEN"]).config.merge == MERGE
    finally:
        api.delete_repo(repo_id, missing_ok=True)


def test_a_dinov2_encoder_folder_can_be_pushed(tmp_path, tiny_backbone):
    """θ_0 (the pre-trained encoder) is published as a plain DINOv2 folder: config and safetensors."""
    from hf_simo.publishing import push_folder_to_hub, validate_model_folder

    tiny_backbone.save_pretrained(tmp_path / "encoder")
    assert validate_model_folder(tmp_path / "encoder") is None
    result = push_folder_to_hub(tmp_path / "encoder", "org/encoder", dry_run=True)
    assert result.files == ["config.json", "model.safetensors"]
    (tmp_path / "encoder" / "model.safetensors").unlink()
    with pytest.raises(Exception, match="has no weights"):
        validate_model_folder(tmp_path / "encoder")

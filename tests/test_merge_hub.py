"""Sources given as Hub ids (with @revision) from an offline cache, commits recorded; push through a mocked HfApi."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from helpers.checkpoints import TASKS, build_base, build_task
from helpers.hub import FakeHfApi, write_hub_cache
from hf_simo import CheckpointError, SimoModel
from hf_simo.cli import main as hf_simo_main
from hf_simo.hub import HubOptions
from hf_simo.merging import MergeOptionError, merge, merge_to_folder


@pytest.fixture
def hub_sources(tmp_path, hub_cache):
    """org/base (main), org/seg (v1 and main: different weights), org/depth (main); tasks record org/base."""
    base = build_base(tmp_path / "base")
    commits = {"org/base": write_hub_cache(tmp_path / "base", "org/base")}
    build_task(tmp_path / "seg_v1", base, "segmentation", seed=1, base_name="org/base")
    build_task(tmp_path / "seg_main", base, "segmentation", seed=7, base_name="org/base")
    build_task(tmp_path / "depth", base, "depth", seed=2, base_name="org/base")
    commits["org/seg@v1"] = write_hub_cache(tmp_path / "seg_v1", "org/seg", revision="v1")
    commits["org/seg"] = write_hub_cache(tmp_path / "seg_main", "org/seg", revision="main")
    commits["org/depth"] = write_hub_cache(tmp_path / "depth", "org/depth")
    return tmp_path, commits


def test_sources_by_hub_id_with_revision_record_their_commits(hub_sources, tmp_path):
    root, commits = hub_sources
    out = merge_to_folder(tmp_path / "merged", ["seg=org/seg@v1", "org/depth"], "org/base", "ties", density=0.5)
    config = json.loads((out / "config.json").read_text())
    record = config["merge"]
    assert record["base"] == {"name_or_path": "org/base", "revision": None, "commit": commits["org/base"]}
    assert record["sources"] == [
        {
            "task": "seg",
            "name_or_path": "org/seg",
            "revision": "v1",
            "commit": commits["org/seg@v1"],
            "source_task": "segmentation",
        },
        {"task": "depth", "name_or_path": "org/depth", "revision": None, "commit": commits["org/depth"]},
    ]
    assert config["base_model_name_or_path"] == "org/base"
    assert config["base_model_revision"] == commits["org/base"]
    # the v1 weights were used, not main's
    local = merge_to_folder(
        tmp_path / "local",
        [f"seg={root / 'seg_v1'}", root / "depth"],
        root / "base",
        "ties",
        density=0.5,
    )
    assert load_file(out / "model.safetensors").keys() == load_file(local / "model.safetensors").keys()
    for key, value in load_file(local / "model.safetensors").items():
        assert torch.equal(load_file(out / "model.safetensors")[key], value), key
    main = merge(["seg=org/seg", "org/depth"], "org/base", "ties", density=0.5)
    assert not torch.equal(
        main.heads["seg"].classifier.weight, SimoModel.from_pretrained(out).heads["seg"].classifier.weight
    )


def test_base_recorded_in_hub_checkpoints_is_fetched_from_the_cache(hub_sources):
    _, commits = hub_sources
    model = merge(["org/seg@v1", "org/depth"])
    assert model.config.merge["base"]["commit"] == commits["org/base"]
    assert model.task_names == ["segmentation", "depth"]


def test_task_sources_by_name_read_hub_configs_with_the_hub_options(hub_sources, monkeypatch):
    import hf_simo.hub
    from hf_simo.merging import parse_task_sources

    seen = []
    original = hf_simo.hub.snapshot_download

    def spy(*args, **kwargs):  # where resolve_repo looks it up
        seen.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(hf_simo.hub, "snapshot_download", spy)
    hub = HubOptions(local_files_only=True, cache_dir=None, token="hf_secret")
    assert parse_task_sources(["org/seg@v1", "d=org/depth"], hub=hub) == {
        "segmentation": "org/seg@v1",
        "d": "org/depth",
    }
    assert len(seen) == 1 and seen[0]["local_files_only"] is True and seen[0]["token"] == "hf_secret"
    assert seen[0]["revision"] == "v1"


def test_unknown_repo_and_revision_are_clear_errors(hub_sources, tmp_path):
    with pytest.raises(CheckpointError, match="org/missing"):
        merge_to_folder(tmp_path / "x", ["org/missing"], "org/base")
    with pytest.raises(CheckpointError, match="org/seg"):
        merge_to_folder(tmp_path / "x", ["org/seg@nope", "org/depth"], "org/base")
    assert not (tmp_path / "x").exists()


def test_push_uploads_exactly_the_merged_folder(hub_sources, tmp_path, monkeypatch, capsys):
    import hf_simo.publishing

    FakeHfApi.calls = []
    monkeypatch.setattr(hf_simo.publishing, "HfApi", FakeHfApi)
    argv = ["merge", "--task_checkpoints", "org/seg@v1", "org/depth", "--base_model", "org/base"]
    argv += ["--output_dir", str(tmp_path / "merged"), "--push_to_hub", "--hub_model_id", "me/nyuv2-merged"]
    assert hf_simo_main([*argv, "--token", "hf_secret", "--hub_private_repo", "--disable_tqdm"]) == 0
    out = tmp_path / "merged"
    names = [name for name, _ in FakeHfApi.calls]
    assert names == ["init", "create_repo", "create_commit"]
    assert FakeHfApi.calls[0][1] == {"token": "hf_secret"}
    assert FakeHfApi.calls[1][1] == {
        "repo_id": "me/nyuv2-merged",
        "private": True,
        "exist_ok": True,
        "repo_type": "model",
        "token": "hf_secret",
    }
    upload = FakeHfApi.calls[2][1]
    assert upload["repo_id"] == "me/nyuv2-merged"
    assert upload["files"] == ["README.md", "config.json", "model.safetensors", "preprocessor_config.json"]
    assert upload["commit_message"].startswith("Upload merged SIMO model")
    assert out.is_dir()
    assert "hf_secret" not in "".join(capsys.readouterr())


def test_the_merge_package_never_pushes(hub_sources, tmp_path, monkeypatch):
    """Publishing is the verb's job: nothing under hf_simo/merging imports hf_simo.publishing or takes push options,
    and a merge to a folder makes no Hub call."""
    import ast
    import inspect
    from pathlib import Path

    import hf_simo.merging
    import hf_simo.publishing

    root = Path(hf_simo.merging.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "publishing" not in (node.module or ""), path
                assert all(a.name != "publishing" for a in node.names), path
            elif isinstance(node, ast.Import):
                assert all("publishing" not in a.name for a in node.names), path
    for function in (merge, merge_to_folder):
        assert not {"push_to_hub", "private", "commit_message"} & set(inspect.signature(function).parameters)
    FakeHfApi.calls = []
    monkeypatch.setattr(hf_simo.publishing, "HfApi", FakeHfApi)
    merge_to_folder(tmp_path / "quiet", ["org/seg@v1", "org/depth"], "org/base", hub=HubOptions(token="hf_secret"))
    assert FakeHfApi.calls == []
    with pytest.raises(MergeOptionError, match="push_to_hub"):  # the old keyword is refused, not silently dropped
        merge_to_folder(tmp_path / "never", ["org/seg@v1"], "org/base", push_to_hub="me/m")


def test_task_names_must_be_unique(hub_sources, tmp_path):
    with pytest.raises(CheckpointError, match=r"task name 'segmentation' is used by 2 checkpoints.*segmentation_2="):
        merge_to_folder(tmp_path / "x", ["org/seg@v1", "org/seg"], "org/base")
    assert not (tmp_path / "x").exists()
    model = merge(["org/seg@v1", "seg_main=org/seg"], "org/base")
    assert model.task_names == ["segmentation", "seg_main"]
    assert TASKS[0] == "segmentation"

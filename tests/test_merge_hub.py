"""Sources given as Hub ids (with @revision) from an offline cache, commits recorded; push through a mocked HfApi."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from helpers.checkpoints import TASKS, build_base, build_task
from helpers.hub import FakeHfApi, write_hub_cache
from hf_simo import CheckpointError, SimoModel
from hf_simo.merging import merge, merge_to_folder


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
    out = merge_to_folder(
        tmp_path / "merged", ["seg=org/seg@v1", "org/depth"], "org/base", "ties", density=0.5, progress=False
    )
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
        progress=False,
    )
    assert load_file(out / "model.safetensors").keys() == load_file(local / "model.safetensors").keys()
    for key, value in load_file(local / "model.safetensors").items():
        assert torch.equal(load_file(out / "model.safetensors")[key], value), key
    main = merge(["seg=org/seg", "org/depth"], "org/base", "ties", density=0.5, progress=False)
    assert not torch.equal(
        main.heads["seg"].classifier.weight, SimoModel.from_pretrained(out).heads["seg"].classifier.weight
    )


def test_base_recorded_in_hub_checkpoints_is_fetched_from_the_cache(hub_sources):
    _, commits = hub_sources
    model = merge(["org/seg@v1", "org/depth"], progress=False)
    assert model.config.merge["base"]["commit"] == commits["org/base"]
    assert model.task_names == ["segmentation", "depth"]


def test_unknown_repo_and_revision_are_clear_errors(hub_sources, tmp_path):
    with pytest.raises(CheckpointError, match="org/missing"):
        merge_to_folder(tmp_path / "x", ["org/missing"], "org/base", progress=False)
    with pytest.raises(CheckpointError, match="org/seg"):
        merge_to_folder(tmp_path / "x", ["org/seg@nope", "org/depth"], "org/base", progress=False)
    assert not (tmp_path / "x").exists()


def test_push_uploads_exactly_the_merged_folder(hub_sources, tmp_path, monkeypatch):
    import hf_simo.publishing

    FakeHfApi.calls = []
    monkeypatch.setattr(hf_simo.publishing, "HfApi", FakeHfApi)
    out = merge_to_folder(
        tmp_path / "merged",
        ["org/seg@v1", "org/depth"],
        "org/base",
        push_to_hub="me/nyuv2-merged",
        token="hf_secret",
        private=True,
        progress=False,
    )
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


def test_task_names_must_be_unique(hub_sources, tmp_path):
    with pytest.raises(CheckpointError, match=r"task name 'segmentation' is used by 2 checkpoints.*segmentation_2="):
        merge_to_folder(tmp_path / "x", ["org/seg@v1", "org/seg"], "org/base", progress=False)
    assert not (tmp_path / "x").exists()
    model = merge(["org/seg@v1", "seg_main=org/seg"], "org/base", progress=False)
    assert model.task_names == ["segmentation", "seg_main"]
    assert TASKS[0] == "segmentation"

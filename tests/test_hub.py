import json

import pytest
import torch
from safetensors.torch import save_file

from helpers.hub import write_hub_cache
from helpers.tiny import tiny_model
from hf_simo.hub import (
    CheckpointError,
    UnsafeCheckpointError,
    resolve_repo,
    safetensors_files,
    split_revision,
)
from hf_simo.weights import canonical_key


def test_split_revision(tmp_path):
    assert split_revision("org/name@v1") == ("org/name", "v1")
    assert split_revision("org/name") == ("org/name", None)
    folder = tmp_path / "with@sign"
    folder.mkdir()
    assert split_revision(str(folder)) == (str(folder), None)  # existing paths are never split
    with pytest.raises(CheckpointError, match="cannot parse source"):
        split_revision("org/name@")


def test_resolve_local_folder(tmp_path):
    resolved = resolve_repo(tmp_path)
    assert resolved.path == tmp_path and resolved.commit is None and resolved.is_local
    with pytest.raises(CheckpointError, match="only applies to Hub repos"):
        resolve_repo(tmp_path, revision="v1")
    file = tmp_path / "x.safetensors"
    file.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is a file"):
        resolve_repo(file)


def test_resolve_hub_repo_offline_records_commit(tmp_path, hub_cache):
    tiny_model().save_pretrained(tmp_path / "m")
    commit_main = write_hub_cache(tmp_path / "m", "org/repo")
    commit_v1 = write_hub_cache(tmp_path / "m", "org/repo", revision="v1", commit="1" * 40)
    assert commit_v1 == "1" * 40
    main = resolve_repo("org/repo")
    assert main.commit == commit_main and main.revision is None
    assert main.describe() == f"org/repo@{commit_main[:12]}"
    v1 = resolve_repo("org/repo@v1")
    assert (v1.commit, v1.revision, v1.name_or_path) == ("1" * 40, "v1", "org/repo")
    assert (v1.path / "config.json").is_file()
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache"):
        resolve_repo("org/missing")


def test_a_revision_missing_from_the_offline_cache_is_named(tmp_path, hub_cache):
    from hf_simo import SimoModel

    tiny_model().save_pretrained(tmp_path / "m")
    write_hub_cache(tmp_path / "m", "org/x")  # only main is cached
    with pytest.raises(
        CheckpointError, match=r"'org/x': revision 'v9' is not in the offline Hugging Face cache \(it holds main\)"
    ):
        SimoModel.from_pretrained("org/x", revision="v9")
    with pytest.raises(CheckpointError, match=r"'org/y' \(revision 'v9'\) is not a local folder and is not in"):
        resolve_repo("org/y@v9")


def test_safetensors_files_single_sharded_and_refusals(tmp_path):
    single = tmp_path / "single"
    single.mkdir()
    save_file({"a": torch.zeros(1)}, single / "model.safetensors")
    assert safetensors_files(single) == [single / "model.safetensors"]

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    save_file({"a": torch.zeros(1)}, sharded / "model-00001-of-00002.safetensors")
    save_file({"b": torch.zeros(1)}, sharded / "model-00002-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    assert [p.name for p in safetensors_files(sharded)] == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    (sharded / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="shards listed .* are missing"):
        safetensors_files(sharded)
    (sharded / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a valid safetensors index"):
        safetensors_files(sharded)

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    torch.save({"a": torch.zeros(1)}, pickled / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match="only has pickle weights \\(pytorch_model.bin\\)"):
        safetensors_files(pickled, source="org/pickled")
    assert safetensors_files(pickled, allow_pickle=True) == []

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="has no weights.*allow_pickle"):
        safetensors_files(empty)


def test_corrupt_safetensors_is_reported(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    from hf_simo import SimoModel

    with pytest.raises(CheckpointError, match="model.safetensors is not a readable safetensors file"):
        SimoModel.from_pretrained(tmp_path)


def test_canonical_key_follows_transformers_renames():
    assert (
        canonical_key("encoder.layer.0.attention.attention.query.weight") == "encoder.layer.0.attention.q_proj.weight"
    )
    assert (
        canonical_key("dinov2.encoder.layer.3.attention.output.dense.bias")
        == "dinov2.encoder.layer.3.attention.o_proj.bias"
    )
    assert canonical_key("encoder.layer.0.attention.k_proj.weight") == "encoder.layer.0.attention.k_proj.weight"
    assert canonical_key("heads.depth.classifier.weight") == "heads.depth.classifier.weight"

"""Importing transformers' DPT-DINOv2 / Depth Anything checkpoints: bit-identical heads, automatic in merges (a
mixed merge equals merging the same tensors by hand), provenance with the resolved commit, refusals before anything
is written. References are transformers' own classes loaded from the same folders."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForDepthEstimation, DepthAnythingForDepthEstimation, Dinov2Model

from helpers.hub import write_hub_cache
from helpers.tiny import TINY_TASKS
from helpers.transformers_models import KINDS, randomize_, save_tiny_transformers, tiny_dinov2_config
from hf_simo import SimoModel
from hf_simo.errors import CheckpointError, UnsafeCheckpointError, UnsupportedFormatError
from hf_simo.merging import merge, merge_to_folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("transformers")
    return {kind: save_tiny_transformers(kind, root / kind) for kind in KINDS}


@pytest.mark.parametrize("size", [(56, 70), (61, 75), (71, 29)])
@pytest.mark.parametrize("kind", KINDS)
def test_imported_head_is_bit_identical(folders, kind, size):
    original = AutoModelForDepthEstimation.from_pretrained(folders[kind]).eval()
    model = SimoModel.from_pretrained(folders[kind], task="depth")
    model.config.pad_to_patch_multiple = False  # the original drops remainders too
    pixel_values = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = original(pixel_values=pixel_values).predicted_depth
        encoding = model.encode(pixel_values)
        got = model.heads["depth"](encoding.features, encoding.grid)[:, 0]
    assert expected.abs().mean() > 1e-3  # a parity on zeros could not fail
    assert torch.equal(got, expected)
    if kind.startswith("da") and size == (56, 70):  # patch multiples: the prediction *is* the original's
        with torch.no_grad():
            assert torch.equal(model(pixel_values).predictions["depth"][:, 0], expected)


@pytest.mark.parametrize(
    ("kind", "head", "task_kind", "layernorm"),
    [
        ("da1", "depth_anything", "disparity", True),
        ("da2", "depth_anything", "disparity", True),
        ("da2_metric", "depth_anything", "depth", True),
        ("dpt_dinov2", "dpt", "depth", False),
    ],
)
def test_task_spec_and_provenance_come_from_the_source(folders, kind, head, task_kind, layernorm):
    source_config = json.loads((folders[kind] / "config.json").read_text())
    model = SimoModel.from_pretrained(folders[kind], task="depth")
    spec = model.config.tasks["depth"]
    assert (spec["head"], spec["kind"], spec["head_options"]["layernorm"]) == (head, task_kind, layernorm)
    assert spec["layers"] == source_config["backbone_config"]["out_indices"]
    if head == "depth_anything":
        assert spec["head_options"]["max_depth"] == source_config["max_depth"]
    assert model.config.sources["depth"]["format"] == ("dpt" if head == "dpt" else "depth_anything")


def test_offline_hub_repo_imports_with_its_commit(folders, tmp_path):
    commit = write_hub_cache(folders["da2"], "depth-anything/tiny-da2-hf")
    model = SimoModel.from_pretrained("depth-anything/tiny-da2-hf", task="depth")
    assert model.config.sources["depth"]["commit"] == commit
    pinned = SimoModel.from_pretrained(f"depth-anything/tiny-da2-hf@{commit}", task="depth")
    assert pinned.config.sources["depth"]["commit"] == commit
    with pytest.raises(CheckpointError, match="task="):
        SimoModel.from_pretrained("depth-anything/tiny-da2-hf", tasks=["depth"])
    with pytest.raises(CheckpointError, match="name the task"):
        SimoModel.from_pretrained("depth-anything/tiny-da2-hf")


def _mixed_sources(root):
    """A Dinov2 base, a Depth Anything model and a native segmentation SimoModel fine-tuned from it."""
    base = randomize_(Dinov2Model(tiny_dinov2_config(num_hidden_layers=6)), seed=1).eval()
    base.save_pretrained(root / "base")
    generator = torch.Generator().manual_seed(2)
    depth = save_tiny_transformers("da2", root / "depth_src")
    da = DepthAnythingForDepthEstimation.from_pretrained(depth).eval()
    with torch.no_grad():
        da.backbone.load_state_dict(base.state_dict())
        for parameter in da.backbone.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 1e-2)
    da.save_pretrained(root / "depth")
    seg = SimoModel.from_backbone(base, {"seg": TINY_TASKS["segmentation"]})
    with torch.no_grad():
        for parameter in seg.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 1e-2)
    seg.save_pretrained(root / "seg")
    return base, da, seg


def test_mixed_merge_equals_merging_the_tensors_by_hand(tmp_path):
    base, da, seg = _mixed_sources(tmp_path)
    merged = merge(
        [f"depth={tmp_path / 'depth'}", str(tmp_path / "seg")], base=tmp_path / "base", alpha=0.5, dtype=None
    )
    theta0 = base.state_dict()
    by_hand = {
        name: value + 0.5 * ((da.backbone.state_dict()[name] - value) + (seg.dinov2.state_dict()[name] - value))
        for name, value in theta0.items()
    }
    for name, expected in by_hand.items():
        torch.testing.assert_close(merged.dinov2.state_dict()[name], expected, rtol=0, atol=1e-6)
    for name, value in da.state_dict().items():
        if name.startswith(("neck.", "head.")):
            assert torch.equal(merged.heads["depth"].state_dict()[name], value)
    assert merged.config.tasks["depth"]["head"] == "depth_anything"
    sources = {s["task"]: s for s in merged.config.merge["sources"]}
    assert sources["depth"]["format"] == "depth_anything" and "format" not in sources["seg"]


def test_merge_of_an_imported_source_without_a_base_suggests_one(tmp_path, folders):
    with pytest.raises(CheckpointError, match="facebook/dinov2|--base_model"):
        merge([f"depth={folders['da2']}"], dtype=None)


def test_unnamed_imported_source_asks_for_a_name(folders, tmp_path):
    from hf_simo.merging.io.sources import parse_task_sources

    with pytest.raises(CheckpointError, match="NAME="):
        parse_task_sources([str(folders["da1"])])


def _edit_config(folder, edit):
    path = folder / "config.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(is_hybrid=True), "DPT-hybrid"),
        (lambda c: c.update(backbone_config=None), "its own ViT"),
        (lambda c: c["backbone_config"].update(model_type="beit"), "'beit' backbone"),
        (lambda c: c["backbone_config"].update(model_type="dinov3_vit"), "'dinov3_vit' backbone"),
        (lambda c: c.update(architectures=["DPTForSemanticSegmentation"]), "Supported:.*interop/importers"),
    ],
)
def test_unsupported_dpt_is_refused_before_anything_is_written(folders, tmp_path, edit, message):
    folder = tmp_path / "src"
    folder.mkdir()
    for path in folders["dpt_dinov2"].iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    _edit_config(folder, edit)
    with pytest.raises(UnsupportedFormatError, match=message):
        merge_to_folder(tmp_path / "out", [f"depth={folder}"], base=folder, dtype=None)
    assert not (tmp_path / "out").exists()


def test_bad_depth_anything_configs_are_refused(folders, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    for path in folders["da2"].iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    _edit_config(folder, lambda c: c.update(max_depth=None))
    with pytest.raises(CheckpointError, match="max_depth is null"):
        SimoModel.from_pretrained(folder, task="depth")
    _edit_config(folder, lambda c: c.update(max_depth=1, architectures=["GLPNForDepthEstimation"]))
    with pytest.raises(UnsupportedFormatError, match="depth_anything:.*dpt:.*encoder:"):
        SimoModel.from_pretrained(folder, task="depth")


def test_pickle_only_repo_is_refused_unless_allowed(folders, tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "config.json").write_bytes((folders["da1"] / "config.json").read_bytes())
    torch.save(load_file(folders["da1"] / "model.safetensors"), folder / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match="allow_pickle"):
        SimoModel.from_pretrained(folder, task="depth")
    model = SimoModel.from_pretrained(folder, task="depth", allow_pickle=True)
    reference = SimoModel.from_pretrained(folders["da1"], task="depth")
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in model.state_dict().items())


def test_base_of_another_size_is_refused_naming_both(folders, tmp_path):
    Dinov2Model(tiny_dinov2_config(hidden_size=48, num_hidden_layers=6)).save_pretrained(tmp_path / "big")
    with pytest.raises(CheckpointError, match="hidden_size is 32.*has 48"):
        merge_to_folder(tmp_path / "out", [f"depth={folders['da2']}"], base=tmp_path / "big", dtype=None)
    assert not (tmp_path / "out").exists()


def test_backbone_checkpoint_and_imported_models_are_bases(folders, tmp_path):
    """A Dinov2Backbone folder is a base like a Dinov2Model one; so is an imported model (its encoder)."""
    from transformers import Dinov2Backbone

    Dinov2Backbone(tiny_dinov2_config(num_hidden_layers=6, out_indices=[1, 2])).save_pretrained(tmp_path / "backbone")
    for base in (tmp_path / "backbone", folders["da2"]):
        merged = merge([f"depth={folders['da2']}"], base=base, dtype=None, max_relative_distance=None)
        assert merged.task_names == ["depth"]


def test_task_source_loads_native_and_imported_checkpoints(folders, tmp_path):
    """The realign and relationships jobs read their single-task models through `from_task_source`."""
    imported = SimoModel.from_task_source(folders["da2"], "depth")
    assert imported.task_names == ["depth"] and imported.config.sources["depth"]["format"] == "depth_anything"
    imported.save_pretrained(tmp_path / "native")
    native = SimoModel.from_task_source(tmp_path / "native", "ignored")
    assert native.task_names == ["depth"]
    assert all(torch.equal(v, imported.state_dict()[k]) for k, v in native.state_dict().items())


@pytest.mark.parametrize("kind", ["da2", "da2_metric"])
def test_evaluate_of_a_transformers_repo_names_its_task(folders, kind, tmp_path, capsys):
    """`hf-simo evaluate REPO --task depth` imports the model as the task `depth` and scores the dataset's `depth`
    column; the reference is transformers' own model on the same images, scored by the task kind's metric (relative
    Depth Anything: a disparity task, scored after scale-and-shift alignment)."""
    from hf_simo.cli import main
    from hf_simo.data import load_data
    from hf_simo.data.arguments import DataArguments
    from hf_simo.metrics import metric_for
    from hf_simo.processing import normalize_images

    data = DataArguments(image_size=56, test_samples=5, validation_samples=2, dataset_cache_dir=str(tmp_path / "c"))
    options = ["--image_size", "56", "--test_samples", "5", "--validation_samples", "2"]
    options += ["--dataset_cache_dir", data.dataset_cache_dir, "--per_device_eval_batch_size", "2"]
    output = tmp_path / "metrics.json"
    argv = ["evaluate", str(folders[kind]), "--task", "depth", *options, "--output_file", str(output)]
    assert main(argv) == 0
    assert "| depth |" in capsys.readouterr().out
    results = json.loads(output.read_text())["results"]

    test = load_data(data, test_samples=5, train=False)["test"].with_format("torch")[:]
    original = AutoModelForDepthEstimation.from_pretrained(folders[kind]).eval()
    spec = SimoModel.from_pretrained(folders[kind], task="depth").config.get_task("depth")
    metric = metric_for(spec)
    with torch.no_grad():
        prediction = original(pixel_values=normalize_images(test["image"].float())).predicted_depth
    metric.update(prediction[:, None], test["depth"])
    expected = metric.compute()
    assert set(results["depth"]) == set(expected)
    assert results["depth"] == pytest.approx(expected, rel=1e-5)
    assert ("ssi_abs_err" in expected) == (kind == "da2") and spec.metric == (
        "ssi_abs_err" if kind == "da2" else "abs_err"
    )

    assert main(["evaluate", str(folders[kind]), *options]) == 1  # no --task: the error names it
    err = capsys.readouterr().err
    assert "name the task it becomes" in err and "--task NAME (hf-simo evaluate)" in err
    assert main(["evaluate", str(folders[kind]), "--task", "relative", *options]) == 1  # a column the data lacks
    assert "the dataset has no labels for task(s) ['relative']; its columns are" in capsys.readouterr().err
    SimoModel.from_pretrained(folders[kind], task="depth").save_pretrained(tmp_path / "native")
    assert main(["evaluate", str(tmp_path / "native"), "--task", "depth", *options]) == 1
    assert "is a SimoModel checkpoint" in capsys.readouterr().err  # whose tasks are named already: --tasks

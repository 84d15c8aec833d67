"""Exporting a task back to transformers: import -> export gives back every tensor and config.json exactly; a
merged encoder exports and runs in `transformers.pipeline("depth-estimation")` without hf_simo; what transformers
cannot express is refused before anything is written; `hf-simo export` reaches `export_task` with every option."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForDepthEstimation

from helpers.options import assert_every_field_covered
from helpers.tiny import tiny_model
from helpers.transformers_models import KINDS, randomize_, save_tiny_transformers, tiny_dinov2_config
from hf_simo import SimoModel
from hf_simo.cli import export as export_verb
from hf_simo.cli import main
from hf_simo.errors import UnsupportedExportError
from hf_simo.hub import HubOptions
from hf_simo.interop import export_task
from hf_simo.merging import merge_to_folder


PREPROCESSOR = "preprocessor_config.json"
CUSTOM_PROCESSOR = {  # not the default of any family: 70 px, 14-multiples, aspect kept, [-1, 1] normalisation
    "do_resize": True,
    "size": {"height": 70, "width": 70},
    "ensure_multiple_of": 14,
    "keep_aspect_ratio": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("transformers")
    return {kind: save_tiny_transformers(kind, root / kind) for kind in KINDS}


@pytest.fixture(scope="module")
def custom(tmp_path_factory):
    """Depth Anything and DPT-DINOv2 folders saved with a non-default `DPTImageProcessor`."""
    from transformers import DPTImageProcessorPil

    root = tmp_path_factory.mktemp("custom")
    out = {}
    for kind in ("da2", "dpt_dinov2"):
        out[kind] = save_tiny_transformers(kind, root / kind)
        DPTImageProcessorPil(**CUSTOM_PROCESSOR).save_pretrained(out[kind])
    return out


def read_json(path):
    return json.loads(path.read_text())


def without(folder, name, destination):
    """A copy of `folder` without the file `name`."""
    destination.mkdir(parents=True)
    for path in folder.iterdir():
        if path.name != name:
            (destination / path.name).write_bytes(path.read_bytes())
    return destination


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_gives_back_every_tensor_and_the_config(folders, kind, tmp_path):
    model = SimoModel.from_pretrained(folders[kind], task="depth")
    out = export_task(model, "depth", tmp_path / "export")
    original, exported = load_file(folders[kind] / "model.safetensors"), load_file(out / "model.safetensors")
    assert original.keys() == exported.keys()
    assert all(torch.equal(original[k], exported[k]) and original[k].dtype == exported[k].dtype for k in original)
    drop = ("transformers_version", "_name_or_path")
    config_of = lambda folder: {  # noqa: E731
        k: v for k, v in json.loads((folder / "config.json").read_text()).items() if k not in drop
    }
    assert config_of(out) == config_of(folders[kind])


@pytest.mark.parametrize("kind", ["da2", "dpt_dinov2"])
def test_round_trip_gives_back_the_source_preprocessor(custom, kind, tmp_path):
    """import -> export, and import -> save -> `hf-simo export`: the source's preprocessor_config.json as it was."""
    original = read_json(custom[kind] / PREPROCESSOR)
    assert {k: original[k] for k in CUSTOM_PROCESSOR} == CUSTOM_PROCESSOR  # the source is non-default
    model = SimoModel.from_pretrained(custom[kind], task="depth")
    assert model.config.sources["depth"]["preprocessor_config"] == original
    assert read_json(export_task(model, "depth", tmp_path / "python") / PREPROCESSOR) == original
    model.save_pretrained(tmp_path / "imported")  # config.json keeps the record; the folder's own processor differs
    assert read_json(tmp_path / "imported" / PREPROCESSOR) != original
    argv = ["export", str(tmp_path / "imported"), "--task", "depth", "--output_dir", str(tmp_path / "cli")]
    assert main(argv) == 0
    assert read_json(tmp_path / "cli" / PREPROCESSOR) == original


def test_without_a_recorded_processor_the_export_fits_the_encoder(folders, tmp_path):
    """No preprocessor_config.json in the source: the exported one resizes to the encoder's image size in multiples
    of its patch, with ImageNet statistics; an explicit image_processor wins over everything."""
    from transformers import DPTImageProcessorPil

    source = without(folders["da2"], PREPROCESSOR, tmp_path / "bare")
    model = SimoModel.from_pretrained(source, task="depth")
    assert "preprocessor_config" not in model.config.sources["depth"]
    written = read_json(export_task(model, "depth", tmp_path / "made") / PREPROCESSOR)
    backbone = model.config.backbone_config
    assert (backbone.image_size, backbone.patch_size) == (56, 14)  # not DINOv2's 518 / 14
    assert written["size"] == {"height": 56, "width": 56} and written["ensure_multiple_of"] == 14
    assert written["keep_aspect_ratio"] is True and written["do_resize"] is True
    assert written["image_mean"] == [0.485, 0.456, 0.406] and written["image_std"] == [0.229, 0.224, 0.225]
    assert not written["image_processor_type"].startswith("Simo")
    explicit = DPTImageProcessorPil(**CUSTOM_PROCESSOR)
    imported = SimoModel.from_pretrained(folders["da2"], task="depth")
    out = export_task(imported, "depth", tmp_path / "explicit", image_processor=explicit)
    assert {k: read_json(out / PREPROCESSOR)[k] for k in CUSTOM_PROCESSOR} == CUSTOM_PROCESSOR


@pytest.mark.filterwarnings("ignore:.*relative distance to the base")  # a random base: only the processor matters
def test_merged_folder_keeps_the_source_processor_or_fits_the_encoder(custom, folders, tmp_path):
    """The merge engine copies the first task source's processor; without one it makes one for the merged encoder
    (its image and patch size, not DINOv2's 518 / 14); `hf-simo export` of the merged folder writes its settings."""
    from transformers import Dinov2Model

    randomize_(Dinov2Model(tiny_dinov2_config(num_hidden_layers=6)), seed=3).save_pretrained(tmp_path / "base")
    options = {"base": tmp_path / "base", "dtype": None, "max_relative_distance": None}
    merge_to_folder(tmp_path / "with", [f"depth={custom['da2']}"], **options)
    assert read_json(tmp_path / "with" / PREPROCESSOR) == read_json(custom["da2"] / PREPROCESSOR)
    argv = ["export", str(tmp_path / "with"), "--task", "depth", "--output_dir", str(tmp_path / "export")]
    assert main(argv) == 0
    exported = read_json(tmp_path / "export" / PREPROCESSOR)
    assert {k: exported[k] for k in CUSTOM_PROCESSOR} == CUSTOM_PROCESSOR
    bare = without(folders["da2"], PREPROCESSOR, tmp_path / "bare")
    merge_to_folder(tmp_path / "without", [f"depth={bare}"], **options)
    made = read_json(tmp_path / "without" / PREPROCESSOR)
    assert made["size"] == {"height": 56, "width": 56} and made["ensure_multiple_of"] == 14


PIPELINE_SCRIPT = """
import sys, json, numpy as np, torch
sys.modules["hf_simo"] = None  # `import hf_simo` raises: the export must not need it
from PIL import Image
from transformers import pipeline, AutoModelForDepthEstimation
image = Image.fromarray((np.random.default_rng(0).random((70, 56, 3)) * 255).astype("uint8"))
depth = pipeline("depth-estimation", model=sys.argv[1], device="cpu")
out = depth(image)
inputs = depth.image_processor(image, return_tensors="pt")["pixel_values"]
print(json.dumps({
    "shape": list(out["predicted_depth"].shape),
    "size": list(out["depth"].size),
    "processor": {k: depth.image_processor.to_dict()[k] for k in json.loads(sys.argv[2])},
    "inputs": list(inputs.shape),
}))
"""


def test_merged_export_runs_in_the_depth_estimation_pipeline_without_hf_simo(custom, tmp_path):
    model = SimoModel.from_pretrained(custom["da2"], task="depth")
    with torch.no_grad():  # a "merged" encoder: not the one the source shipped
        model.dinov2.embeddings.patch_embeddings.projection.weight.mul_(0.9)
    out = export_task(model, "depth", tmp_path / "export")
    exported = AutoModelForDepthEstimation.from_pretrained(out).eval()
    pixel_values = torch.randn(1, 3, 56, 70, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(
            exported(pixel_values=pixel_values).predicted_depth, model(pixel_values).predictions["depth"][:, 0]
        )
    result = subprocess.run(
        [sys.executable, "-c", PIPELINE_SCRIPT, str(out), json.dumps(list(CUSTOM_PROCESSOR))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["size"] == [56, 70]  # PIL size (width, height) of the input image
    processor = {k: list(v) if isinstance(v, tuple) else v for k, v in record["processor"].items()}
    assert processor == CUSTOM_PROCESSOR  # the pipeline prepares inputs as the source did
    assert record["inputs"] == [1, 3, 70, 56]  # 70 x 56 kept (aspect ratio, multiples of 14)


def test_what_transformers_cannot_express_is_refused_before_writing(folders, tmp_path):
    native = tiny_model({"seg": {"kind": "semantic_segmentation", "num_outputs": 3}})
    with pytest.raises(UnsupportedExportError, match="linear head.*Publish the SimoModel"):
        export_task(native, "seg", tmp_path / "out")
    model = SimoModel.from_pretrained(folders["da1"], task="depth").enable_block_adapters("linear")
    export_task(model, "depth", tmp_path / "zero_slots")  # all-zero slots: exportable
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "adapter_slot" in n).add_(0.1)
    with pytest.raises(UnsupportedExportError, match="block adapters"):
        export_task(model, "depth", tmp_path / "out")
    with pytest.raises(KeyError, match="unknown task"):
        export_task(model, "segmentation", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_every_option_of_export_reaches_export_task(monkeypatch, capsys, tmp_path):
    calls = {}

    class Model:
        config = type("C", (), {"tasks": {"depth": {"head": "depth_anything"}}})()

        def eval(self):
            return self

    def from_pretrained(name, **kwargs):
        calls["read"] = {"name": name, **kwargs}
        return Model()

    def fake_export(model, task, output_dir, image_processor=None, overwrite=False):
        calls["export"] = {"task": task, "output_dir": output_dir, "overwrite": overwrite}
        return output_dir

    monkeypatch.setattr(SimoModel, "from_pretrained", staticmethod(from_pretrained))
    monkeypatch.setattr("hf_simo.interop.export.export_task", fake_export)
    argv = ["export", "org/m", "--task", "depth", "--output-dir", str(tmp_path / "o"), "--model_revision", "v2"]
    argv += ["--overwrite_output_dir", "--token", "hf_x", "--cache_dir", "/tmp/c", "--local_files_only"]
    assert main([*argv, "--allow_pickle"]) == 0
    assert calls["read"] == {
        "name": "org/m",
        "revision": "v2",
        "allow_pickle": True,
        "token": "hf_x",
        "cache_dir": "/tmp/c",
        "local_files_only": True,
    }
    assert calls["export"] == {"task": "depth", "output_dir": str(tmp_path / "o"), "overwrite": True}
    table = {
        "model_name_or_path": "read.name",
        "model_revision": "read.revision",
        "task": "export.task",
        "output_dir": "export.output_dir",
        "overwrite_output_dir": "export.overwrite",
        "token": "read.token",
        "cache_dir": "read.cache_dir",
        "local_files_only": "read.local_files_only",
        "allow_pickle": "read.allow_pickle",
    }
    assert_every_field_covered(export_verb, table)
    assert HubOptions  # the verb's Hub carrier

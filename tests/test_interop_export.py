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
from helpers.transformers_models import KINDS, save_tiny_transformers
from hf_simo import SimoModel
from hf_simo.cli import export as export_verb
from hf_simo.cli import main
from hf_simo.errors import UnsupportedExportError
from hf_simo.hub import HubOptions
from hf_simo.interop import export_task


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("transformers")
    return {kind: save_tiny_transformers(kind, root / kind) for kind in KINDS}


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


PIPELINE_SCRIPT = """
import sys, json, numpy as np, torch
sys.modules["hf_simo"] = None  # `import hf_simo` raises: the export must not need it
from PIL import Image
from transformers import pipeline, AutoModelForDepthEstimation
image = Image.fromarray((np.random.default_rng(0).random((70, 56, 3)) * 255).astype("uint8"))
out = pipeline("depth-estimation", model=sys.argv[1], device="cpu")(image)
print(json.dumps({"shape": list(out["predicted_depth"].shape), "size": list(out["depth"].size)}))
"""


def test_merged_export_runs_in_the_depth_estimation_pipeline_without_hf_simo(folders, tmp_path):
    model = SimoModel.from_pretrained(folders["da2"], task="depth")
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
        [sys.executable, "-c", PIPELINE_SCRIPT, str(out)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["size"] == [56, 70]  # PIL size (width, height) of the input image


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

    def fake_export(model, task, output_dir, overwrite=False):
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

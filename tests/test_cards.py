"""Model cards: the three kinds and their sections, metadata that huggingface_hub parses (model-index round trip),
no evaluation section without results, atomic README writing, bad input."""

import hashlib
import json
import math

import pytest
from huggingface_hub import EvalResult, ModelCard, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results

from helpers.tiny import tiny_config, tiny_model
from hf_simo.cards import (
    CITATION,
    DEFAULT_TAGS,
    SimoCardData,
    build_model_card,
    card_kind,
    eval_results_from_metrics,
    metrics_from_eval_results,
    template_path,
    write_model_card,
)
from hf_simo.encoders import shipped_encoder_path
from hf_simo.metrics import render_table


TASKS = {
    "segmentation": {"kind": "semantic_segmentation", "num_outputs": 3, "class_names": ["floor", "wall", "box"]},
    "depth": {"kind": "depth"},
    "normals": {"kind": "surface_normals", "head": "dpt", "head_options": {"fusion_hidden_size": 16}},
}
SEG_COMMIT, DEPTH_COMMIT, BASE_COMMIT = "a" * 40, "b" * 40, "c" * 40
MERGE = {
    "method": "ties",
    "options": {"density": 0.2, "scope": "global"},
    "alpha": 1.0,
    "base": {"name_or_path": "facebook/dinov2-small", "revision": "main", "commit": BASE_COMMIT},
    "sources": [
        {"task": "segmentation", "name_or_path": "org/nyuv2-seg", "revision": "v1", "commit": SEG_COMMIT},
        {"task": "depth", "name_or_path": "org/nyuv2-depth", "revision": None, "commit": DEPTH_COMMIT},
        {
            "task": "normals",
            "name_or_path": "/home/someone/private/checkpoints/normals-run3",
            "revision": None,
            "commit": None,
        },
    ],
    "statistics": {"encoder_parameters": 41000},
}
REALIGNMENT = {"mode": "representation", "rank": 16, "steps": 1200, "samples": 400, "trainable_parameters": 54321}
RESULTS = {
    "segmentation": {"miou": 0.6578, "pixel_accuracy": 0.81},
    "depth": {"abs_err": 0.4171, "rel_err": math.nan},  # NaN values are left out of the metadata
    "normals": {"mean_angle": 26.13, "median_angle": 20.5},
}


def single_task_config():
    return tiny_config(
        {"segmentation": TASKS["segmentation"]},
        base_model_name_or_path="facebook/dinov2-small",
        base_model_revision=BASE_COMMIT,
    )


def merged_config():
    return tiny_config(TASKS, base_model_name_or_path="facebook/dinov2-small", merge=MERGE)


def realigned_config():
    return tiny_config(TASKS, base_model_name_or_path="facebook/dinov2-small", merge=MERGE, realignment=REALIGNMENT)


def sections(card: ModelCard) -> list[str]:
    return [line[3:] for line in card.text.splitlines() if line.startswith("## ")]


def test_kind_is_decided_from_the_config():
    assert card_kind(single_task_config()) == "single-task"
    assert card_kind(merged_config()) == "merged"
    assert card_kind(realigned_config()) == "realigned"
    assert card_kind(tiny_config(TASKS)) == "multi-task"
    assert template_path().is_file()


def test_single_task_card_without_results(tmp_path):
    card = build_model_card(single_task_config(), repo_id="org/nyuv2-seg")
    assert sections(card) == ["Model details", "Training", "Usage", "Limitations", "Citation"]  # no Evaluation
    data = card.data.to_dict()
    assert data["library_name"] == "hf_simo"
    assert set(DEFAULT_TAGS) <= set(data["tags"]) and "single-task" in data["tags"]
    assert data["base_model"] == "facebook/dinov2-small" and data["base_model_relation"] == "finetune"
    assert data["pipeline_tag"] == "image-segmentation"
    assert "model-index" not in data and card.data.eval_results is None
    text = card.text
    assert 'SimoModel.from_pretrained("org/nyuv2-seg")' in text
    assert 'AutoImageProcessor.from_pretrained("org/nyuv2-seg")' in text
    assert "| `segmentation` | semantic segmentation | 3 classes (ignore index 255) | linear |" in text
    assert "0: floor, 1: wall, 2: box" in text
    assert f"at revision `{BASE_COMMIT}`" in text
    assert CITATION in text
    # the rendered card survives a save/load cycle unchanged
    card.save(tmp_path / "README.md")
    assert ModelCard.load(tmp_path / "README.md").content == card.content


def test_merged_card_lists_method_and_sources():
    card = build_model_card(merged_config())
    assert sections(card) == ["Model details", "Merging", "Usage", "Limitations", "Citation"]
    text = card.text
    assert "- **Method:** `ties`" in text and "- **density:** 0.2" in text and "α = 1.0" in text
    assert f"| `segmentation` | [org/nyuv2-seg](https://huggingface.co/org/nyuv2-seg) | v1 | `{SEG_COMMIT}` |" in text
    assert f"`{DEPTH_COMMIT}`" in text and f"(commit `{BASE_COMMIT}`)" in text
    assert "local folder `normals-run3`" in text and "/home/someone" not in card.content  # no local path leaked
    assert '"<user>/<model-name>"' in text  # placeholder repo id when none is given
    data = card.data.to_dict()
    assert data["base_model"] == ["org/nyuv2-seg", "org/nyuv2-depth"]  # Hub sources only
    assert data["base_model_relation"] == "merge" and "merged" in data["tags"]
    assert "pipeline_tag" not in data  # several kinds of task: no single pipeline
    assert "Merged without any training" in text


def sha256_prefix(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def base_lines(card: ModelCard) -> list[str]:
    starts = ("- **Pre-trained encoder (θ₀):**", "- **Base encoder θ₀:**")
    return [line for line in card.text.splitlines() if line.startswith(starts)]


def test_a_base_that_is_the_shipped_encoder_is_named_with_its_digest_and_provenance():
    folder = shipped_encoder_path()
    provisional = json.loads((folder / "provenance.json").read_text()).get("provisional", False)
    digest = sha256_prefix(folder / "model.safetensors")  # read here from the file, not through hf_simo
    shipped_merge = {**MERGE, "base": {"name_or_path": str(folder), "revision": None, "commit": None}}
    config = tiny_config(TASKS, base_model_name_or_path=str(folder), merge=shipped_merge)
    card = build_model_card(config)
    lines = base_lines(card)
    assert len(lines) == 2  # model details (θ₀) and the merge record's base encoder
    for line in lines:
        assert "the encoder shipped with hf_simo" in line and "`hf_simo.encoders`, `embedded`" in line
        assert f"`{digest}" in line
        assert ("**provisional**" in line) == bool(provisional)
        assert "local folder" not in line and str(folder) not in card.content  # no absolute path leaked
    assert card.data.to_dict()["base_model"] == ["org/nyuv2-seg", "org/nyuv2-depth"]  # the Hub cannot resolve θ₀


def test_another_installations_shipped_encoder_is_read_from_its_own_files(tmp_path):
    package = tmp_path / "site-packages" / "hf_simo"
    folder = package / "encoders" / "embedded"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"not this installation's weights")
    (folder / "provenance.json").write_text(json.dumps({"provisional": False}))
    (package / "version.py").write_text('__version__ = "9.8.7"\n')
    card = build_model_card(tiny_config({"depth": TASKS["depth"]}, base_model_name_or_path=str(folder)))
    (line,) = base_lines(card)
    assert "the encoder shipped with hf_simo 9.8.7 (`hf_simo.encoders`, `embedded`" in line
    assert f"`{sha256_prefix(folder / 'model.safetensors')}" in line and "provisional" not in line
    (folder / "provenance.json").write_text(json.dumps({"provisional": True}))
    (line,) = base_lines(build_model_card(tiny_config({"depth": TASKS["depth"]}, base_model_name_or_path=str(folder))))
    assert "**provisional**" in line


def test_an_ordinary_folder_or_hub_base_is_named_as_before(tmp_path):
    folder = tmp_path / "checkpoints" / "embedded"  # the shipped encoder's name, but not where hf_simo ships it
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "provenance.json").write_text(json.dumps({"provisional": True}))
    for base, expected in (
        (str(folder), "- **Pre-trained encoder (θ₀):** local folder `embedded`"),
        ("facebook/dinov2-small", "- **Pre-trained encoder (θ₀):** [facebook/dinov2-small]"),
    ):
        (line,) = base_lines(build_model_card(tiny_config({"depth": TASKS["depth"]}, base_model_name_or_path=base)))
        assert line.startswith(expected) and "hf_simo.encoders" not in line and "provisional" not in line


def test_realigned_card_shows_realignment_settings():
    card = build_model_card(realigned_config(), dataset_name="NYUv2 (synthetic)")
    assert sections(card) == ["Model details", "Merging", "Re-alignment", "Usage", "Limitations", "Citation"]
    text = card.text
    assert "(**representation** re-alignment)" in text
    for row in (
        "| mode | representation |",
        "| rank | 16 |",
        "| steps | 1200 |",
        "| samples | 400 |",
        "| trainable parameters | 54,321 (54.3k) |",
        "| data | NYUv2 (synthetic) |",
    ):
        assert row in text, row
    assert "re-aligned" in card.data.tags
    assert card.data.model_name is None  # no eval results: no model-index
    assert "then re-aligned, see below" in text


def test_eval_results_round_trip_through_model_index(tmp_path):
    model = tiny_model(TASKS)
    model.config.merge = MERGE
    model.save_pretrained(tmp_path)
    table = {
        "Task-Specific": {"segmentation": 0.7079, "depth": 0.2314, "normals": 18.02},
        "TIES": {"segmentation": 0.6578, "depth": 0.4171, "normals": 26.13},
    }
    path = write_model_card(
        tmp_path,
        model,
        eval_results=RESULTS,
        results_table=table,
        dataset_name="NYUv2",
        dataset_id="tanganke/nyuv2",
        dataset_split="test",
        repo_id="org/nyuv2-ties",
        license="apache-2.0",
    )
    assert path == tmp_path / "README.md"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    loaded = ModelCard.load(path)
    assert sections(loaded) == ["Model details", "Merging", "Evaluation", "Usage", "Limitations", "Citation"]
    expected = eval_results_from_metrics(
        RESULTS, model.config, dataset_name="NYUv2", dataset_id="tanganke/nyuv2", dataset_split="test"
    )
    assert loaded.data.eval_results == expected
    assert len(expected) == 5  # the NaN rel_err is not written
    finite = {t: {m: v for m, v in ms.items() if not math.isnan(v)} for t, ms in RESULTS.items()}
    assert metrics_from_eval_results(loaded.data.eval_results) == finite
    by_metric = {(r.metric_name, r.metric_type): r for r in loaded.data.eval_results}
    seg = by_metric[("segmentation / mIoU", "miou")]
    assert (seg.task_type, seg.dataset_type, seg.dataset_name, seg.dataset_split, seg.metric_value) == (
        "image-segmentation",
        "tanganke/nyuv2",
        "NYUv2",
        "test",
        0.6578,
    )
    assert by_metric[("depth / aErr.", "abs_err")].task_type == "depth-estimation"
    assert loaded.data.model_name.startswith("SIMO merged DINOv2 (ties)")
    # the raw metadata parses with huggingface_hub's model-index parser as well
    metadata = metadata_load(path)
    name, results = model_index_to_eval_results(metadata["model-index"])
    assert name == loaded.data.model_name and results == expected
    assert metadata["datasets"] == ["tanganke/nyuv2"] and metadata["license"] == "apache-2.0"
    assert metadata["metrics"] == ["miou", "pixel_accuracy", "abs_err", "mean_angle", "median_angle"]
    text = loaded.text
    assert (
        render_table(
            table, "Task-Specific", {"segmentation": "miou", "depth": "abs_err", "normals": "mean_angle"}
        ).strip()
        in text
    )
    assert "| `segmentation` | mIoU ↑ | **65.78 %** |" in text
    assert "| `normals` | mDist. ↓ | **26.13°** |" in text and "| `normals` | median dist. ↓ | 20.50° |" in text


def test_prerendered_table_and_eval_result_objects():
    results = [
        EvalResult(
            task_type="depth-estimation",
            dataset_type="x",
            dataset_name="X",
            metric_type="abs_err",
            metric_value=0.25,
            metric_name="depth / aErr.",
        )
    ]
    card = build_model_card(merged_config(), eval_results=results, results_table="| a | b |\n|---|---|\n| 1 | 2 |")
    assert "## Evaluation" in card.text and "| a | b |" in card.text
    assert card.data.eval_results == results
    only_table = build_model_card(merged_config(), results_table="| only | table |")
    assert "## Evaluation" in only_table.text and only_table.data.eval_results is None


def test_card_defaults_to_the_folders_config_and_bad_input(tmp_path):
    tiny_model({"depth": TASKS["depth"]}).save_pretrained(tmp_path / "m")
    card = ModelCard.load(write_model_card(tmp_path / "m"))
    assert "# DINOv2 depth estimation (depth)" in card.text
    with pytest.raises(ValueError, match="model_id must be a Hub repo id"):
        build_model_card(merged_config(), repo_id="not a repo id")
    with pytest.raises(KeyError, match="evaluation results for task 'edges'"):
        build_model_card(merged_config(), eval_results={"edges": {"abs_err": 0.1}})
    with pytest.raises(KeyError, match="results_table has task"):
        build_model_card(merged_config(), results_table={"Task-Specific": {"edges": 0.1}, "TA": {"edges": 0.2}})
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        build_model_card(tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        write_model_card(tmp_path / "missing", merged_config())
    with pytest.raises(TypeError, match="expected a SimoModel"):
        build_model_card(42)
    with pytest.raises(ValueError, match="needs the model's config"):
        SimoCardData().to_dict()


def test_parameter_counts_come_from_the_weights_headers_without_building_a_model(tmp_path):
    import torch

    from hf_simo.cards import parameter_counts
    from hf_simo.modeling_simo import SimoModel

    model = tiny_model(TASKS)
    model.save_pretrained(tmp_path / "m")
    with torch.device("meta"):  # the reference: what the old cards counted on a model built from the config
        reference = SimoModel(model.config)
    expected = {"encoder": sum(p.numel() for p in reference.dinov2.parameters())}
    expected |= {f"head:{n}": sum(p.numel() for p in h.parameters()) for n, h in reference.heads.items()}
    assert parameter_counts(tmp_path / "m") == expected == parameter_counts(model)
    assert parameter_counts(model.config) == {} and parameter_counts(tmp_path / "nothing") == {}
    encoder = f"{expected['encoder'] / 1e3:.1f}k parameters"
    assert encoder in build_model_card(tmp_path / "m").text  # the folder's headers
    assert encoder in ModelCard.load(write_model_card(tmp_path / "m", model.config)).text  # config + the folder
    assert encoder in build_model_card(model).text
    assert "parameters" not in build_model_card(model.config).text.split("## Training")[0].split("Encoder:**")[1][:200]
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        build_model_card(model, dataset="x")

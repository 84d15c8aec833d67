"""The `simo-dense-prediction` pipeline (registered on import) on single images and batches, against the model +
processor path; transformers' own depth-estimation / image-segmentation pipelines on single-task models; and the
model card's usage snippets, executed against a local folder."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from helpers.tiny import tiny_model
from hf_simo import ImageInputError, SimoDensePredictionPipeline
from hf_simo.image_processing_simo import make_image_processor


NAMES = {0: "floor", 1: "wall", 2: "box"}
TASKS = {
    "segmentation": {"kind": "semantic_segmentation", "num_outputs": 3, "id2label": NAMES},
    "depth": {"kind": "depth"},
    "normals": {"kind": "surface_normals"},
    "edges": {"kind": "regression", "num_outputs": 1},
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipeline") / "model"
    tiny_model(TASKS, seed=2).save_pretrained(path)
    return path


def _image(height, width, seed=0):
    return Image.fromarray((np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8))


def _reference(folder, image):
    """What the model and its processor give for one image, at its own size."""
    from hf_simo import SimoModel

    model = SimoModel.from_pretrained(folder).eval()
    processor = make_image_processor(model.config)
    with torch.no_grad():
        out = model(**processor(image, return_tensors="pt"))
    return processor.post_process(out, target_sizes=[(image.height, image.width)])[0]


def test_registered_on_import_and_matches_the_model_and_processor(folder, tmp_path):
    assert PIPELINE_REGISTRY.check_task("simo-dense-prediction")[1]["impl"] is SimoDensePredictionPipeline
    predict = pipeline("simo-dense-prediction", model=str(folder))
    image = _image(45, 70)
    result = predict(image)
    assert set(result) == set(TASKS)
    reference = _reference(folder, image)
    torch.testing.assert_close(result["depth"]["predicted_depth"], reference["depth"])
    assert result["depth"]["depth"].size == (70, 45) and result["depth"]["depth"].mode == "L"
    torch.testing.assert_close(result["normals"]["predicted_normals"], reference["normals"])
    assert result["normals"]["normals"].mode == "RGB" and result["normals"]["normals"].size == (70, 45)
    torch.testing.assert_close(result["edges"]["predicted_values"], reference["edges"])
    # segmentation as transformers' image-segmentation pipeline gives it: one mask per class present, named
    class_map = reference["segmentation"].numpy()
    masks = {item["label"]: np.asarray(item["mask"]) for item in result["segmentation"]}
    assert set(masks) == {NAMES[int(k)] for k in np.unique(class_map)}
    for index, name in NAMES.items():
        if name in masks:
            assert np.array_equal(masks[name] == 255, class_map == index)
    assert all(item["score"] is None for item in result["segmentation"])

    # paths, arrays and tensors give the same; tasks= runs a subset
    image.save(tmp_path / "scene.png")
    from_path = predict(str(tmp_path / "scene.png"), tasks=["depth"])
    assert set(from_path) == {"depth"}
    torch.testing.assert_close(from_path["depth"]["predicted_depth"], result["depth"]["predicted_depth"])
    from_array = predict(np.asarray(image), tasks="depth")
    torch.testing.assert_close(from_array["depth"]["predicted_depth"], result["depth"]["predicted_depth"])


def test_batches_give_the_single_image_results(folder):
    predict = pipeline("simo-dense-prediction", model=str(folder))
    images = [_image(45, 70, seed=1), _image(90, 140, seed=2), _image(45, 70, seed=3)]  # one aspect ratio
    singles = [predict(image) for image in images]
    for batch_size in (1, 3):
        batch = predict(images, batch_size=batch_size)
        assert isinstance(batch, list) and len(batch) == 3
        for one, many in zip(singles, batch):
            torch.testing.assert_close(one["depth"]["predicted_depth"], many["depth"]["predicted_depth"])
            assert [m["label"] for m in one["segmentation"]] == [m["label"] for m in many["segmentation"]]
    stacked = predict(np.stack([np.asarray(images[0]), np.asarray(images[2])]))  # an (N, H, W, C) array
    assert len(stacked) == 2
    with pytest.raises(ImageInputError, match="resize to different sizes"):
        predict([_image(45, 70), _image(70, 45)], batch_size=2)


def test_bad_inputs_and_tasks(folder, tmp_path):
    predict = pipeline("simo-dense-prediction", model=str(folder))
    with pytest.raises(ImageInputError, match="no images given"):
        predict([])
    with pytest.raises(KeyError, match=r"unknown task\(s\) \['nope'\]; this model has tasks"):
        predict(_image(40, 40), tasks=["nope"])
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageInputError, match="notes.txt is not a readable image"):
        predict(str(tmp_path / "notes.txt"))
    with pytest.raises(ImageInputError, match="smaller than one 8×8 patch"):
        predict(_image(4, 30))
    grey = predict(_image(40, 40).convert("L"))  # image modes are converted, not refused
    assert grey["normals"]["predicted_normals"].shape == (3, 40, 40)
    with pytest.raises(TypeError, match="needs a SimoModel"):
        from transformers import Dinov2Config, Dinov2Model

        SimoDensePredictionPipeline(model=Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=32, patch_size=8, image_size=32)),
                                    image_processor=make_image_processor())  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "tag"), [("depth", "depth-estimation"), ("semantic_segmentation", "image-segmentation")]
)
def test_single_task_models_run_in_transformers_own_pipeline(tmp_path, kind, tag):
    spec = {"kind": kind, **({"num_outputs": 3, "id2label": NAMES} if kind == "semantic_segmentation" else {})}
    model = tiny_model({"task": spec})
    model.save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert f"pipeline_tag: {tag}" in card  # the card claims it: it must work
    image = _image(37, 51)
    theirs = pipeline(tag, model=str(tmp_path))(image)
    ours = pipeline("simo-dense-prediction", model=str(tmp_path))(image)["task"]
    if kind == "depth":
        torch.testing.assert_close(theirs["predicted_depth"], ours["predicted_depth"])
    else:
        assert [m["label"] for m in theirs] == [m["label"] for m in ours]
        for a, b in zip(theirs, ours):
            assert np.array_equal(np.asarray(a["mask"]), np.asarray(b["mask"]))


def test_card_usage_snippets_run_against_the_folder(folder, tmp_path, monkeypatch):
    card = (folder / "README.md").read_text()
    assert "pipeline_tag" not in card.split("---")[1]  # several kinds: no single transformers pipeline
    snippets = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    assert len(snippets) == 2
    monkeypatch.chdir(tmp_path)
    _image(50, 60).save(tmp_path / "scene.jpg")
    for code in snippets:
        code = code.replace("<user>/<model-name>", str(folder))
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the card's own snippet
        for task in TASKS:
            assert task in namespace, f"the snippet does not define {task}"
        depth = namespace["depth"]
        depth = depth["predicted_depth"] if isinstance(depth, dict) else depth
        assert tuple(depth.shape) == (50, 60)

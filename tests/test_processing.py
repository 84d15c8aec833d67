"""The image processor saved with every model: DPT's resizing (checked against transformers' DPT processor), the
tensor normalisation of training loops, input conversion, bad inputs, and post-processing back to odd sizes
(checked against transformers' own `post_process_*` and plain interpolation)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoImageProcessor
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.modeling_outputs import DepthEstimatorOutput, SemanticSegmenterOutput
from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

from helpers.tiny import tiny_model
from hf_simo import ImageInputError, make_image_processor, normalize_images
from hf_simo.image_processing_simo import SimoImageProcessorPil, as_simo_image_processor, load_rgb_image


TASKS = {
    "segmentation": {"kind": "semantic_segmentation", "num_outputs": 4},
    "depth": {"kind": "depth"},
    "normals": {"kind": "surface_normals"},
    "edges": {"kind": "regression", "num_outputs": 2},
}


def _pixels(height, width, seed=0):
    return (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)


def test_normalize_images_matches_the_image_processor():
    processor = make_image_processor(do_resize=False)
    images = torch.rand(2, 3, 15, 17)
    ours = normalize_images(images, processor)
    uint8 = (images * 255).round().to(torch.uint8)
    theirs = processor(list(uint8.permute(0, 2, 3, 1).numpy()), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(normalize_images(uint8.float() / 255, processor), theirs, atol=1e-5, rtol=1e-5)
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(ours, (images - mean) / std)


def test_resizes_as_transformers_dpt_processor_with_the_models_patch_and_size():
    """A 4000×3000-like photo no longer enters the encoder at full size: DPT's keep-aspect resize to ~image_size."""
    config = tiny_model(TASKS).config  # patch 8, image_size 32
    processor = make_image_processor(config)
    assert isinstance(processor, SimoImageProcessorPil)
    assert processor.ensure_multiple_of == 8 and processor.keep_aspect_ratio and processor.do_resize
    reference = DPTImageProcessorPil(
        do_resize=True,
        size={"height": 32, "width": 32},
        keep_aspect_ratio=True,
        ensure_multiple_of=8,
        image_mean=list(IMAGENET_DEFAULT_MEAN),
        image_std=list(IMAGENET_DEFAULT_STD),
    )
    for height, width in [(300, 400), (37, 29), (32, 32), (17, 90)]:
        image = _pixels(height, width)
        ours = processor(image, return_tensors="pt")["pixel_values"]
        theirs = reference(image, return_tensors="pt")["pixel_values"]
        torch.testing.assert_close(ours, theirs)
        assert ours.shape[-2] % 8 == 0 and ours.shape[-1] % 8 == 0
    assert processor(_pixels(300, 400), return_tensors="pt")["pixel_values"].shape == (1, 3, 32, 40)
    # the embedded benchmark's encoders are pre-trained at the benchmark's size: its images are not resized
    image = _pixels(32, 32)
    assert processor(image, return_tensors="pt")["pixel_values"].shape == (1, 3, 32, 32)
    # a configurable target, e.g. the training images' (height, width)
    assert make_image_processor(config, size=(48, 64))(_pixels(480, 640), return_tensors="pt")[
        "pixel_values"
    ].shape == (1, 3, 48, 64)
    with pytest.raises(ValueError, match="smaller than one 8×8 patch"):
        make_image_processor(config, size=4)


def test_saved_processor_loads_through_auto_and_old_folders_keep_working(tmp_path):
    model = tiny_model(TASKS)
    model.save_pretrained(tmp_path / "new")
    saved = json.loads((tmp_path / "new" / "preprocessor_config.json").read_text())
    assert saved["image_processor_type"] == "SimoImageProcessor" and saved["size"] == {"height": 32, "width": 32}
    loaded = AutoImageProcessor.from_pretrained(tmp_path / "new")
    assert isinstance(loaded, SimoImageProcessorPil) and loaded.ensure_multiple_of == 8
    # a folder saved before this processor: a plain DPT processor that never resizes
    old = tmp_path / "old"
    model.save_pretrained(old, image_processor=DPTImageProcessorPil(do_resize=False, do_pad=False))
    legacy = AutoImageProcessor.from_pretrained(old)
    assert type(legacy).__name__ == "DPTImageProcessorPil" and legacy.do_resize is False
    image = _pixels(30, 45)
    assert legacy(image, return_tensors="pt")["pixel_values"].shape == (1, 3, 30, 45)
    upgraded = as_simo_image_processor(legacy)
    assert isinstance(upgraded, SimoImageProcessorPil) and upgraded.do_resize is False
    torch.testing.assert_close(
        upgraded(image, return_tensors="pt")["pixel_values"], legacy(image, return_tensors="pt")["pixel_values"]
    )


def test_post_processing_back_to_odd_sizes_matches_transformers_and_interpolation():
    model = tiny_model(TASKS, seed=1)
    processor = make_image_processor(model.config)
    images = [_pixels(37, 53, seed=1), _pixels(37, 53, seed=2)]  # one aspect ratio: one batch
    inputs = processor(images, return_tensors="pt")
    assert inputs["pixel_values"].shape == (2, 3, 32, 48)
    with torch.no_grad():
        out = model(**inputs)
    sizes = [(37, 53), (61, 29)]  # odd sizes, one per image
    results = processor.post_process(out, target_sizes=sizes)
    reference = DPTImageProcessorPil()
    depth_ref = reference.post_process_depth_estimation(
        DepthEstimatorOutput(predicted_depth=out.predicted_depth), sizes
    )
    seg_ref = reference.post_process_semantic_segmentation(SemanticSegmenterOutput(logits=out.logits), sizes)
    for i, (height, width) in enumerate(sizes):
        result = results[i]
        assert result["segmentation"].shape == (height, width) and result["segmentation"].dtype == torch.long
        assert torch.equal(result["segmentation"], seg_ref[i])
        assert result["depth"].shape == (height, width)
        torch.testing.assert_close(result["depth"], depth_ref[i]["predicted_depth"])
        normals = result["normals"]
        assert normals.shape == (3, height, width)
        torch.testing.assert_close(normals.norm(dim=0), torch.ones(height, width), atol=1e-5, rtol=0)
        expected = F.normalize(
            F.interpolate(out.predictions["normals"][i : i + 1], size=(height, width), mode="bilinear")[0], dim=0
        )
        torch.testing.assert_close(normals, expected)
        edges = F.interpolate(out.predictions["edges"][i : i + 1], size=(height, width), mode="bilinear")[0]
        torch.testing.assert_close(result["edges"], edges)
    # no target size: the model's output size
    assert processor.post_process(out)[0]["depth"].shape == (32, 48)
    with pytest.raises(KeyError, match="no output for task"):
        processor.post_process(out, tasks=["nope"])
    with pytest.raises(ValueError, match="target sizes"):
        processor.post_process(out, target_sizes=[(10, 10)])


def test_transformers_own_post_processing_reads_the_outputs():
    """DPT's processor (not ours) on the per-task outputs and, for a single depth/segmentation task, on the whole."""
    model = tiny_model(TASKS)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 24, 40))
    assert out.predicted_depth.shape == (1, 24, 40) and out.logits.shape == (1, 4, 24, 40)
    assert torch.equal(out.predicted_depth, out.predictions["depth"][:, 0])
    dpt = DPTImageProcessorPil()
    depth = dpt.post_process_depth_estimation(out, target_sizes=[(13, 7)])[0]["predicted_depth"]
    assert depth.shape == (13, 7)
    segmentation = dpt.post_process_semantic_segmentation(out.task_outputs["segmentation"], target_sizes=[(13, 7)])
    assert segmentation[0].shape == (13, 7)
    assert isinstance(out.task_outputs["depth"], DepthEstimatorOutput)
    assert isinstance(out.task_outputs["segmentation"], SemanticSegmenterOutput)
    # two depth-like tasks: no single predicted_depth; our processor says which output to pass
    two = tiny_model({"depth": {"kind": "depth"}, "disparity": {"kind": "disparity"}})
    with torch.no_grad():
        out = two(torch.randn(1, 3, 16, 16))
    assert out.predicted_depth is None and out.logits is None
    with pytest.raises(ValueError, match=r"no single depth or disparity task \(tasks: \['depth', 'disparity'\]\)"):
        make_image_processor(two.config).post_process_depth_estimation(out)
    torch.testing.assert_close(
        make_image_processor(two.config).post_process_depth_estimation(out.task_outputs["disparity"])[0][
            "predicted_depth"
        ],
        out.predictions["disparity"][0, 0],
    )


def test_image_modes_are_converted(tmp_path):
    rgb = _pixels(20, 24)
    expected = np.asarray(Image.fromarray(rgb))
    assert np.array_equal(np.asarray(load_rgb_image(rgb)), expected)
    assert np.array_equal(np.asarray(load_rgb_image(np.moveaxis(rgb, -1, 0))), expected)  # CHW
    assert np.array_equal(np.asarray(load_rgb_image(torch.from_numpy(rgb))), expected)
    assert np.array_equal(np.asarray(load_rgb_image(rgb.astype(np.float32) / 255)), expected)
    grey = rgb[..., 0]
    converted = np.asarray(load_rgb_image(Image.fromarray(grey, mode="L")))
    assert converted.shape == (20, 24, 3) and all(np.array_equal(converted[..., c], grey) for c in range(3))
    # RGBA: composited on white (transparent pixels white, opaque ones unchanged)
    rgba = np.concatenate([rgb, np.full((20, 24, 1), 255, np.uint8)], axis=-1)
    rgba[:5, :, 3] = 0
    converted = np.asarray(load_rgb_image(Image.fromarray(rgba, mode="RGBA")))
    assert (converted[:5] == 255).all() and np.array_equal(converted[5:], rgb[5:])
    # 16-bit grayscale PNG: scaled to 8 bits, not clipped
    sixteen = (np.arange(20 * 24, dtype=np.uint16).reshape(20, 24) * 137).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "depth16.png")
    converted = np.asarray(load_rgb_image(tmp_path / "depth16.png"))
    assert np.array_equal(converted[..., 0], np.round(sixteen / 257.0).astype(np.uint8))
    assert np.array_equal(np.asarray(load_rgb_image(sixteen))[..., 0], converted[..., 0])
    # the processor converts the same way
    processor = make_image_processor(tiny_model(TASKS).config, do_resize=False)
    torch.testing.assert_close(
        processor(Image.fromarray(grey, mode="L"), return_tensors="pt")["pixel_values"],
        processor(np.repeat(grey[..., None], 3, axis=-1), return_tensors="pt")["pixel_values"],
    )


def test_bad_inputs_get_clear_errors(tmp_path):
    processor = make_image_processor(tiny_model(TASKS).config)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cases = [
        (tmp_path / "missing.png", "is not a file"),
        (tmp_path / "notes.txt", "notes.txt is not a readable image"),
        (tmp_path / "broken.png", "broken.png is not a readable image"),
        (_pixels(5, 40), "5 pixels, smaller than one 8×8 patch"),
        (_pixels(8, 4000), "too elongated"),
        ([], "no images given"),
        (np.full((10, 10, 3), 2.0, np.float32), r"float image with values in \[2, 2\]"),
        (np.zeros((10, 10, 5), np.uint8), r"has shape \(10, 10, 5\)"),
        ("just text", "is not a file"),
        (42, "pass a path, a URL, a PIL image"),
    ]
    for bad, message in cases:
        with pytest.raises(ImageInputError, match=message):
            processor(bad, return_tensors="pt")
    assert issubclass(ImageInputError, ValueError)


def test_urls_load_through_transformers_and_failures_are_one_line(monkeypatch):
    import io

    import transformers.image_utils as image_utils

    buffer = io.BytesIO()
    Image.fromarray(_pixels(20, 30)).save(buffer, format="PNG")

    class Response:
        content = buffer.getvalue()

    requested = []
    monkeypatch.setattr(image_utils.httpx, "get", lambda url, **kwargs: requested.append(url) or Response())
    image = load_rgb_image("https://example.com/scene.png")
    assert image.size == (30, 20) and image.mode == "RGB" and requested == ["https://example.com/scene.png"]

    def unreachable(url, **kwargs):
        raise ConnectionError("network is unreachable\nsecond line")

    monkeypatch.setattr(image_utils.httpx, "get", unreachable)
    with pytest.raises(ImageInputError, match="cannot load image from https://example.com/x.png: network") as info:
        load_rgb_image("https://example.com/x.png")
    assert "\n" not in str(info.value)

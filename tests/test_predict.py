"""`hf-simo predict`: the files it writes (one PNG per image and task, a grid per image), a second run that does not
add files, input conversion, and bad inputs refused before anything is written (nothing half-written)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers.tiny import tiny_model
from hf_simo.cli import main
from hf_simo.predict import output_names


TASKS = {
    "segmentation": {"kind": "semantic_segmentation", "num_outputs": 3, "id2label": {0: "floor", 1: "wall", 2: "box"}},
    "depth": {"kind": "depth"},
    "normals": {"kind": "surface_normals"},
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("predict") / "model"
    tiny_model(TASKS, seed=4).save_pretrained(path)
    return path


def _save(path, height, width, seed=0, mode="RGB"):
    pixels = (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    if mode == "I;16":
        image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path)
    return path


def _png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_writes_one_png_per_image_and_task_and_a_grid(model_dir, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    images = [
        _save(inputs / "kitchen.jpg", 45, 70),
        _save(inputs / "hall.png", 90, 60, seed=1, mode="RGBA"),
        _save(inputs / "depth16.png", 40, 40, seed=2, mode="I;16"),
        _save(inputs / "grey.png", 33, 41, seed=3, mode="L"),
    ]
    out = tmp_path / "out"
    argv = [
        "predict",
        str(model_dir),
        *map(str, images),
        "--output-dir",
        str(out),
        "--per_device_eval_batch_size",
        "2",
        "--disable_tqdm",
    ]
    assert main(argv) == 0
    expected = {f"{image.stem}.{suffix}.png" for image in images for suffix in [*TASKS, "grid"]}
    assert {p.name for p in out.iterdir()} == expected
    for path in out.iterdir():
        width, height = _png_size(path)
        assert width > 100 and height > 100
    assert "wrote 16 file(s) for 4 image(s)" in capsys.readouterr().out
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    # a second run overwrites the same files: nothing added, nothing left behind
    assert main([*argv, "--tasks", "depth"]) == 0
    assert {p.name for p in out.iterdir()} == expected
    assert all(out.joinpath(f"{i.stem}.depth.png").stat().st_mtime_ns > stamps[f"{i.stem}.depth.png"] for i in images)
    assert all(
        out.joinpath(f"{i.stem}.normals.png").stat().st_mtime_ns == stamps[f"{i.stem}.normals.png"] for i in images
    )


def test_repeated_names_get_distinct_files():
    assert output_names(["a/scene.jpg", "b/scene.jpg", "c/other.png", "d/scene.png"]) == [
        "scene",
        "scene-2",
        "other",
        "scene-3",
    ]


def test_bad_inputs_are_refused_before_anything_is_written(model_dir, tmp_path, capsys):
    good = _save(tmp_path / "good.png", 40, 40)
    (tmp_path / "notes.txt").write_text("not an image")
    tiny = _save(tmp_path / "tiny.png", 4, 40)
    out = tmp_path / "out"
    cases = [
        ([str(good), str(tmp_path / "missing.png")], "missing.png is not a file"),
        ([str(good), str(tmp_path / "notes.txt")], "notes.txt is not a readable image"),
        ([str(good), str(tiny)], "smaller than one 8×8 patch"),
        ([str(good), "--tasks", "nope"], r"unknown task\(s\) \['nope'\]"),
        (
            [str(good), "--per_device_eval_batch_size", "0"],
            "--per_device_eval_batch_size must be a positive integer, got 0",
        ),
        ([str(good), "--device", "nonsense"], "cannot use device 'nonsense'"),
    ]
    for extra, message in cases:
        assert main(["predict", str(model_dir), *extra, "--output-dir", str(out), "--disable_tqdm"]) == 1
        err = capsys.readouterr().err
        assert len([line for line in err.splitlines() if "error:" in line]) == 1 and "Traceback" not in err
        assert __import__("re").search(message, err), err
        assert not out.exists()  # nothing written, not even the folder


def test_a_file_that_fails_to_decode_midway_leaves_only_complete_files(model_dir, tmp_path, capsys):
    good = _save(tmp_path / "good.png", 40, 40)
    broken = tmp_path / "broken.png"
    data = _save(tmp_path / "full.png", 40, 40, seed=5).read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # a valid header (size readable), truncated pixels
    out = tmp_path / "out"
    assert main(["predict", str(model_dir), str(good), str(broken), "--output-dir", str(out), "--per_device_eval_batch_size", "1",
                 "--disable_tqdm"]) == 1  # fmt: skip
    assert "broken.png is not a readable image" in capsys.readouterr().err
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"good.{suffix}.png" for suffix in [*TASKS, "grid"])  # no temporaries, no partial PNG

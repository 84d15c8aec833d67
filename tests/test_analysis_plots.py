"""Relationship panels, effect heatmap and per-layer coefficient plots: files written atomically, valid PNG/SVG,
readable (dpi, titles, labels, annotated values)."""

import xml.etree.ElementTree as ET

import pytest
import torch
from PIL import Image

from helpers.relationships import hand_made_result
from hf_simo.analysis import relationship_matrix
from hf_simo.analysis.plots import (
    FigureOptions,
    new_figure,
    plot_layer_coefficients,
    plot_relationship_matrix,
    plot_relationships,
    save_figure,
)


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def svg_text(path) -> str:
    """All text of an SVG (text is kept as <text> elements), after checking it parses as SVG."""
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    return " ".join(t for element in root.iter() if element.tag.endswith("text") for t in element.itertext())


def check_files(paths, folder, dpi=150):
    assert sorted(p.suffix for p in paths) == [".png", ".svg"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in paths)  # no temporary left over
    png = next(p for p in paths if p.suffix == ".png")
    assert png.read_bytes()[:8] == PNG_MAGIC
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert round(image.info["dpi"][0]) == dpi
        assert image.width >= 600 and image.height >= 400
    return svg_text(next(p for p in paths if p.suffix == ".svg"))


def test_relationship_panels(tmp_path):
    result = hand_made_result()
    paths = plot_relationships(result, tmp_path / "rel.png", title="Relationships on the toy benchmark")
    assert {p.name for p in paths} == {"rel.png", "rel.svg"}  # the extension is replaced, both formats written
    text = check_files(paths, tmp_path)
    for expected in (
        "Relationships on the toy benchmark",
        "θ₀ + λ·τ[a]",
        "θ₀ + λ·τ[c]",
        "normalized performance (%)",
        "λ (task-vector coefficient)",
        "single-task level",
    ):
        assert expected in text, expected
    for task in result.tasks:
        assert task in text.split()


def test_relationship_heatmap_is_annotated(tmp_path):
    result = hand_made_result()
    paths = plot_relationship_matrix(
        relationship_matrix(result, 1.0), tmp_path / "matrix", options=FigureOptions(dpi=200)
    )
    text = check_files(paths, tmp_path, dpi=200)
    assert "+16.7" in text and "-16.7" in text  # τ_a on b, τ_b on a
    assert "task vector added" in text and "evaluated task s" in text and "λ = 1" in text
    ratio_paths = plot_relationship_matrix(relationship_matrix(result, 1.0, mode="ratio"), tmp_path / "ratio")
    assert "120.0%" in svg_text(ratio_paths[1])  # b: 0.60 / 0.50 relative to θ_0


def test_layer_coefficients(tmp_path):
    coefficients = {"segmentation": torch.linspace(0.1, 0.9, 12), "depth": [0.3] * 12, "normals": (0.5,) * 12}
    paths = plot_layer_coefficients(coefficients, tmp_path / "coefficients")
    text = check_files(paths, tmp_path)
    assert "Per-layer merging coefficients per task" in text and "merging coefficient" in text
    assert all(task in text for task in coefficients)
    labelled = plot_layer_coefficients(
        {"a": [1, 2]}, tmp_path / "two", layer_labels=["emb.", "block 1"], options=FigureOptions(formats=("svg",))
    )
    assert [p.suffix for p in labelled] == [".svg"] and "block 1" in svg_text(labelled[0])


def test_plot_input_errors(tmp_path):
    with pytest.raises(ValueError, match="coefficients is empty"):
        plot_layer_coefficients({}, tmp_path / "x")
    with pytest.raises(ValueError, match="lengths differ"):
        plot_layer_coefficients({"a": [1, 2], "b": [1, 2, 3]}, tmp_path / "x")
    with pytest.raises(ValueError, match="layer_labels has 1 entries for 2 layers"):
        plot_layer_coefficients({"a": [1, 2]}, tmp_path / "x", layer_labels=["x"])
    with pytest.raises(TypeError, match="must be numbers"):
        plot_layer_coefficients({"a": ["high", "low"]}, tmp_path / "x")
    figure = new_figure(3, 2)
    with pytest.raises(ValueError, match="dpi must be >= 120"):
        save_figure(figure, tmp_path / "x", FigureOptions(dpi=72))
    with pytest.raises(ValueError, match="formats must be"):
        save_figure(figure, tmp_path / "x", FigureOptions(formats=("bmp",)))
    assert list(tmp_path.iterdir()) == []  # nothing written by failed calls

"""Per-task model outputs in transformers' shapes, so transformers' own post-processing reads them.

Segmentation gives a `SemanticSegmenterOutput` (`logits` (B, K, H, W)), depth and disparity a `DepthEstimatorOutput`
(`predicted_depth` (B, H, W), as DPT and Depth Anything return it). transformers has no output class for surface
normals or generic dense regression, so `SurfaceNormalsOutput` and `DenseRegressionOutput` follow the same pattern.
The tensors are views of the model's (B, C, H, W) predictions: nothing is copied.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.modeling_outputs import DepthEstimatorOutput, SemanticSegmenterOutput
from transformers.utils import ModelOutput


@dataclass
class SurfaceNormalsOutput(ModelOutput):
    """predicted_normals: (B, 3, H, W) unit vectors."""

    loss: torch.Tensor | None = None
    predicted_normals: torch.Tensor | None = None


@dataclass
class DenseRegressionOutput(ModelOutput):
    """predicted_values: (B, C, H, W) values of a generic dense regression task."""

    loss: torch.Tensor | None = None
    predicted_values: torch.Tensor | None = None


TaskOutput = SemanticSegmenterOutput | DepthEstimatorOutput | SurfaceNormalsOutput | DenseRegressionOutput
DEPTH_KINDS = ("depth", "disparity")


def task_output(kind: str, prediction: torch.Tensor, loss: torch.Tensor | None = None) -> TaskOutput:
    """The standard output of a task `kind` for its (B, C, H, W) prediction."""
    if kind == "semantic_segmentation":
        return SemanticSegmenterOutput(loss=loss, logits=prediction)
    if kind in DEPTH_KINDS:
        return DepthEstimatorOutput(loss=loss, predicted_depth=prediction[:, 0])
    if kind == "surface_normals":
        return SurfaceNormalsOutput(loss=loss, predicted_normals=prediction)
    if kind == "regression":
        return DenseRegressionOutput(loss=loss, predicted_values=prediction)
    raise ValueError(f"unknown task kind {kind!r}")


def task_kind_of(output: ModelOutput) -> str:
    """Which post-processing an output needs: `semantic_segmentation`, `depth`, `surface_normals` or `regression`."""
    if isinstance(output, SemanticSegmenterOutput):
        return "semantic_segmentation"
    if isinstance(output, DepthEstimatorOutput):
        return "depth"
    if isinstance(output, SurfaceNormalsOutput):
        return "surface_normals"
    if isinstance(output, DenseRegressionOutput):
        return "regression"
    raise TypeError(
        f"expected a per-task output (SemanticSegmenterOutput, DepthEstimatorOutput, SurfaceNormalsOutput or "
        f"DenseRegressionOutput), got {type(output).__name__}; pass SimoModelOutput.task_outputs[task]"
    )


__all__ = [
    "DEPTH_KINDS",
    "DenseRegressionOutput",
    "SurfaceNormalsOutput",
    "TaskOutput",
    "task_kind_of",
    "task_output",
]

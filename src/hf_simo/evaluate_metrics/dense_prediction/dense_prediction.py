"""`evaluate` module for hf_simo's dense-prediction metrics; loads offline from this folder.

```python
import evaluate
from hf_simo.metrics import EVALUATE_MODULE_PATH

miou = evaluate.load(EVALUATE_MODULE_PATH, "semantic_segmentation")
miou.compute(predictions=class_id_maps, references=label_maps, num_outputs=13, ignore_index=255)
depth = evaluate.load(EVALUATE_MODULE_PATH, "depth")
depth.compute(predictions=depth_maps, references=depth_labels)  # (1, H, W) each, 0 = invalid
```
The configuration name is the task kind; keyword arguments of `compute` are `hf_simo.TaskSpec` fields. The
numbers are those of `hf_simo.metrics` (this file only adapts the interface).
"""

import datasets
import evaluate
import numpy as np
import torch

from hf_simo.configuration_simo import TaskSpec
from hf_simo.metrics import metric_for


_KINDS = ("semantic_segmentation", "depth", "disparity", "surface_normals", "regression")

_DESCRIPTION = (
    "Dense-prediction metrics of hf_simo: mIoU/pixel accuracy, absolute/relative error (scale-and-shift-invariant for "
    "disparity), angular error."
)
_KWARGS_DESCRIPTION = """
Args:
    predictions: class-id maps (H, W) for semantic_segmentation, (C, H, W) arrays otherwise.
    references: labels in the same layout; invalid pixels carry ignore_index / invalid_value.
    num_outputs, ignore_index, invalid_value: as in hf_simo.TaskSpec (defaults per kind).
Returns:
    a dict of metric name -> value (e.g. miou, pixel_accuracy; abs_err, rel_err; for disparity also ssi_abs_err,
    ssi_rel_err, after per-image scale-and-shift alignment; mean_angle, median_angle, ...).
"""


class DensePrediction(evaluate.Metric):
    def _info(self):
        if self.config_name not in _KINDS:
            raise KeyError(f"configuration must be a task kind, one of {list(_KINDS)}; got {self.config_name!r}")
        if self.config_name == "semantic_segmentation":
            value = datasets.Sequence(datasets.Sequence(datasets.Value("int64")))
        else:
            value = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32"))))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": value, "references": value}),
        )

    def _compute(self, predictions, references, num_outputs=None, ignore_index=None, invalid_value=None):
        spec = TaskSpec(
            kind=self.config_name, num_outputs=num_outputs, ignore_index=ignore_index, invalid_value=invalid_value
        ).resolved(self.config_name, num_hidden_layers=1)
        metric = metric_for(spec)
        for pred, ref in zip(predictions, references):
            pred = torch.as_tensor(np.asarray(pred))[None]
            ref = torch.as_tensor(np.asarray(ref))[None]
            metric.update(pred, ref)
        return metric.compute()

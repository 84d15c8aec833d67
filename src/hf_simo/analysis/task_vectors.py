"""The geometry of task vectors τ_t = θ_t − θ_0: how far fine-tuning moved the encoder, and how aligned the moves are.

The paper's regime is a strong encoder that fine-tuning moves a little (‖τ_t‖/‖θ_0‖ of a few percent) with task
vectors far from parallel; a small encoder that fine-tuning rewrites (ratio ≳ 1) is the hard case for merging. Every
training run records these numbers (`training_summary.json`, `encoder_drift`) and the demo prints them.

All sums run in float64 over the encoder's floating-point tensors that both states have, tensor by tensor, so no
flattened copy of the encoder is made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch


def _floating(base: Mapping[str, torch.Tensor], other: Mapping[str, torch.Tensor]) -> list[str]:
    return [name for name, tensor in base.items() if tensor.is_floating_point() and name in other]


def encoder_drift(base: Mapping[str, torch.Tensor], finetuned: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """‖τ‖, ‖θ_0‖, their ratio and cos(θ_t, θ_0) for one fine-tuned encoder state against its base."""
    diff_sq = base_sq = end_sq = dot = 0.0
    for name in _floating(base, finetuned):
        start = base[name].detach().to(device="cpu", dtype=torch.float64)
        end = finetuned[name].detach().to(device="cpu", dtype=torch.float64)
        diff_sq += float((end - start).pow(2).sum())
        base_sq += float(start.pow(2).sum())
        end_sq += float(end.pow(2).sum())
        dot += float((end * start).sum())
    return {
        "tau_norm": diff_sq**0.5,
        "theta0_norm": base_sq**0.5,
        "tau_ratio": (diff_sq / max(base_sq, 1e-30)) ** 0.5,
        "cosine_to_base": dot / max(math.sqrt(base_sq * end_sq), 1e-30),
    }


@dataclass
class TaskVectorReport:
    """Per task: ‖τ_t‖/‖θ_0‖ and cos(θ_t, θ_0); per pair: cos(τ_s, τ_t)."""

    tau_ratio: dict[str, float]
    cosine_to_base: dict[str, float]
    cosine: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"tau_ratio": self.tau_ratio, "cosine_to_base": self.cosine_to_base, "cosine": self.cosine}

    def to_markdown(self) -> str:
        tasks = list(self.tau_ratio)
        header = "| task vector | ‖τ‖/‖θ0‖ | cos(θ_t, θ0) | " + " | ".join(f"cos(τ, τ_{t})" for t in tasks) + " |"
        lines = [header, "|---|" + ":-:|" * (2 + len(tasks))]
        for task in tasks:
            cells = [f"{self.cosine[task][other]:.3f}" for other in tasks]
            lines.append(
                f"| {task} | {self.tau_ratio[task]:.3f} | {self.cosine_to_base[task]:.3f} | "
                + " | ".join(cells)
                + " |"
            )
        return "\n".join(lines) + "\n"


def task_vector_report(
    base: Mapping[str, torch.Tensor], finetuned: Mapping[str, Mapping[str, torch.Tensor]]
) -> TaskVectorReport:
    """Sizes of the task vectors of `finetuned` (task -> encoder state) against `base`, and their pairwise cosines."""
    tasks = list(finetuned)
    names = _floating(base, finetuned[tasks[0]]) if tasks else []
    dots = torch.zeros(len(tasks), len(tasks), dtype=torch.float64)
    for name in names:
        start = base[name].detach().to(device="cpu", dtype=torch.float64).reshape(-1)
        taus = torch.stack(
            [finetuned[t][name].detach().to(device="cpu", dtype=torch.float64).reshape(-1) - start for t in tasks]
        )
        dots += taus @ taus.T
    norms = dots.diagonal().clamp(min=1e-30).sqrt()
    cosine = dots / (norms[:, None] * norms[None, :])
    drift = {t: encoder_drift(base, finetuned[t]) for t in tasks}
    return TaskVectorReport(
        tau_ratio={t: drift[t]["tau_ratio"] for t in tasks},
        cosine_to_base={t: drift[t]["cosine_to_base"] for t in tasks},
        cosine={s: {t: float(cosine[i, j]) for j, t in enumerate(tasks)} for i, s in enumerate(tasks)},
    )


__all__ = ["TaskVectorReport", "encoder_drift", "task_vector_report"]

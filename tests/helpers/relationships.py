"""A hand-made task-relationship result with designed behaviour (for the summary, report and plot tests)."""

from __future__ import annotations

from hf_simo.analysis import RelationshipResult


def hand_made_result() -> RelationshipResult:
    """Three tasks with designed behaviour: τ_a helps b, τ_b hurts a, c needs λ ≈ 1 of its own vector."""
    lambdas = [0.0, 0.5, 1.0, 1.5]
    base = {"a": {"miou": 0.50}, "b": {"miou": 0.50}, "c": {"abs_err": 2.0}}

    def point(a, b, c):
        return {"a": {"miou": a}, "b": {"miou": b}, "c": {"abs_err": c}}

    metrics = {
        "a": [point(0.50, 0.50, 2.0), point(0.58, 0.55, 2.0), point(0.60, 0.60, 2.0), point(0.60, 0.62, 2.0)],
        "b": [point(0.50, 0.50, 2.0), point(0.45, 0.58, 2.0), point(0.40, 0.60, 2.0), point(0.35, 0.60, 2.0)],
        "c": [point(0.50, 0.50, 2.0), point(0.50, 0.505, 1.6), point(0.505, 0.50, 1.0), point(0.50, 0.50, 1.1)],
    }
    return RelationshipResult(
        lambdas=lambdas,
        primary_tasks=["a", "b", "c"],
        tasks=["a", "b", "c"],
        metric_names={"a": "miou", "b": "miou", "c": "abs_err"},
        baselines={"a": 0.60, "b": 0.60, "c": 1.0},
        base_metrics=base,
        metrics=metrics,
    )

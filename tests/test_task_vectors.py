"""Task-vector geometry (‖τ‖/‖θ0‖, cos(θ_t, θ0), cos(τ_s, τ_t)) against torch on the flattened encoder vectors."""

import math

import torch
import torch.nn.functional as F

from hf_simo.analysis.task_vectors import encoder_drift, task_vector_report


def _states(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    base = {
        "a.weight": torch.randn(4, 3, generator=gen),
        "b.bias": torch.randn(5, generator=gen),
        "steps": torch.tensor(3),  # not floating: ignored
    }
    tuned = {
        task: {
            k: (v + scale * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v)
            for k, v in base.items()
        }
        for task, scale in (("seg", 0.1), ("depth", 0.5), ("normals", 1.0))
    }
    return base, tuned


def _flat(state):
    return torch.cat([state[k].double().reshape(-1) for k in ("a.weight", "b.bias")])


def test_drift_and_pairwise_cosines_match_flattened_vectors():
    base, tuned = _states()
    report = task_vector_report(base, tuned)
    theta0 = _flat(base)
    for task, state in tuned.items():
        tau = _flat(state) - theta0
        assert math.isclose(report.tau_ratio[task], (tau.norm() / theta0.norm()).item(), rel_tol=1e-12)
        expected = F.cosine_similarity(_flat(state), theta0, dim=0).item()
        assert math.isclose(report.cosine_to_base[task], expected, rel_tol=1e-12)
        for other, other_state in tuned.items():
            expected = F.cosine_similarity(tau, _flat(other_state) - theta0, dim=0).item()
            assert math.isclose(report.cosine[task][other], expected, rel_tol=1e-9, abs_tol=1e-12)
    assert report.tau_ratio["seg"] < report.tau_ratio["depth"] < report.tau_ratio["normals"]
    drift = encoder_drift(base, tuned["depth"])
    assert math.isclose(drift["tau_norm"], (_flat(tuned["depth"]) - theta0).norm().item(), rel_tol=1e-12)
    assert math.isclose(drift["theta0_norm"], theta0.norm().item(), rel_tol=1e-12)


def test_markdown_lists_every_vector_and_pair():
    base, tuned = _states(1)
    table = task_vector_report(base, tuned).to_markdown()
    lines = table.strip().splitlines()
    assert len(lines) == 2 + 3 and "cos(τ, τ_normals)" in lines[0]
    assert lines[2].startswith("| seg | ") and lines[2].count("1.000") >= 1  # cos(τ_seg, τ_seg) = 1

"""Coefficient search on a validation set, scored by normalized performance against single-task baselines."""

from __future__ import annotations

import contextlib
import logging
import math
import sys

import pytest
import torch

from helpers.checkpoints import build_sources
from helpers.tiny import random_labels
from hf_simo import SimoModel
from hf_simo.evaluation import evaluate
from hf_simo.merging import merge, search


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return build_sources(tmp_path_factory.mktemp("search"))


@pytest.fixture(scope="module")
def data(sources):
    _, tasks = sources
    config = merge(tasks).config
    batches = []
    for seed in range(3):
        generator = torch.Generator().manual_seed(seed)
        pixels = torch.randn(2, 3, 32, 32, generator=generator)
        batches.append({"pixel_values": pixels, "labels": random_labels(config, 2, 32, 32, seed=seed)})
    return batches


def test_search_scores_every_candidate_and_the_best_one_reproduces(sources, data, capsys, caplog):
    base, tasks = sources
    with caplog.at_level(logging.INFO, logger="hf_simo.merging.search"):
        result = search(tasks, data, base, "ties", alphas=[0.0, 0.5, 1.0], grid={"density": [0.2, 0.6]})
    assert len(result.candidates) == 6
    assert [(c.options["density"], c.alpha) for c in result.candidates] == [
        (0.2, 0.0),
        (0.2, 0.5),
        (0.2, 1.0),
        (0.6, 0.0),
        (0.6, 0.5),
        (0.6, 1.0),
    ]
    assert capsys.readouterr().out == ""  # a library function logs, it does not print
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "hf_simo.merging.search")
    assert result.table() in logged
    table = result.table() + "\n" + logged
    rows = [line for line in result.table().splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 1 + 6 and rows[1].startswith("| single-task |")
    assert (
        sum(row.startswith("| ties(density=") for row in rows) == 6 and sum(row.endswith("| * |") for row in rows) == 1
    )
    assert "best: ties(" in table
    best = result.best
    assert best.score == max(c.score for c in result.candidates)
    # the in-place swap evaluated exactly the weights that merge() builds for this candidate
    rebuilt = merge(tasks, base, **best.merge_kwargs())
    assert evaluate(rebuilt, data) == best.results
    # alpha = 0 is the base encoder for every density
    zero = [c for c in result.candidates if c.alpha == 0.0]
    assert zero[0].values == zero[1].values


def test_baselines_are_the_single_task_checkpoints_on_the_same_data(sources, data):
    base, tasks = sources
    result = search(tasks, data, base, alphas=[1.0])
    for folder, task in zip(tasks, ["segmentation", "depth", "normals"]):
        single = SimoModel.from_pretrained(folder).eval()
        metric = single.config.get_task(task).metric
        assert result.baselines[task] == evaluate(single, data)[task][metric]
    candidate = result.candidates[0]
    expected = sum(candidate.normalized.values()) / 3
    assert math.isclose(candidate.score, expected)
    for task, value in candidate.values.items():
        higher = result.metric_names[task] == "miou"
        ratio = value / result.baselines[task] if higher else result.baselines[task] / value
        assert math.isclose(candidate.normalized[task], ratio)


def test_given_baselines_are_used_and_must_cover_all_tasks(sources, data):
    base, tasks = sources
    baselines = {"segmentation": 0.5, "depth": 0.1, "normals": 30.0}
    result = search(tasks, data, base, alphas=[0.5], baselines=baselines)
    assert result.baselines == baselines
    with pytest.raises(KeyError, match="normals"):
        search(tasks, data, base, alphas=[0.5], baselines={"segmentation": 0.5, "depth": 0.1})


def test_consensus_lambda_grid_and_one_shot_iterators(sources, data):
    base, tasks = sources
    with pytest.warns(UserWarning, match="one-shot iterator"):
        result = search(
            tasks,
            iter(data),
            base,
            "consensus",
            alphas=[0.5, 1.0],
            grid={"tall_lambda": [0.2, 0.6]},
        )
    assert len(result.candidates) == 4
    assert {c.options["tall_lambda"] for c in result.candidates} == {0.2, 0.6}
    assert all(math.isfinite(c.score) for c in result.candidates)


def test_tall_mask_scores_each_task_with_its_own_masked_encoder(sources, data):
    from helpers.checkpoints import encoder_state
    from hf_simo.merging.merge_methods import tall_mask

    base, tasks = sources
    result = search(tasks, data, base, "tall_mask", alphas=[1.0], grid={"tall_lambda": [0.2, 0.6]})
    assert [c.options["tall_lambda"] for c in result.candidates] == [0.2, 0.6]
    theta0 = encoder_state(base)
    vectors = [{k: v - theta0[k] for k, v in encoder_state(f).items()} for f in tasks]
    merged = {k: vectors[0][k] + vectors[1][k] + vectors[2][k] for k in theta0}
    for candidate in result.candidates:
        for folder, task, tau in zip(tasks, ["segmentation", "depth", "normals"], vectors):
            single = SimoModel.from_pretrained(folder).eval()
            single.dinov2.load_state_dict(
                {
                    k: theta0[k] + merged[k] * tall_mask(tau[k], merged[k], candidate.options["tall_lambda"])
                    for k in theta0
                }
            )
            assert evaluate(single, data)[task] == candidate.results[task], (task, candidate.label)
    assert result.candidates[0].values != result.candidates[1].values


def test_the_alpha_search_bar_follows_the_one_switch(sources, data, capsys, monkeypatch):
    """`search_and_merge`'s bars are hf_simo.utils.logging's: ``--disable_tqdm`` (`CommonArguments`, as every command
    applies it) and `disable_progress_bars()` hide them; by default the α search shows one on stderr."""
    from hf_simo.merging import search_and_merge
    from hf_simo.utils import logging as simo_logging

    hub_tqdm = sys.modules["huggingface_hub.utils.tqdm"]  # the module (the attribute of that name is the class)
    monkeypatch.setattr(hub_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", None)  # the environment must not decide here
    base, tasks = sources
    named = {folder.name: str(folder) for folder in tasks}

    def bars(switch) -> str:
        capsys.readouterr()
        with switch:
            outcome = search_and_merge(named, base=str(base), alphas=[0.5, 1.0], validation=data)
        assert outcome.alpha in (0.5, 1.0) and outcome.search_table
        return capsys.readouterr().err

    shown = bars(contextlib.nullcontext())
    assert "search task_arithmetic" in shown and "2/2" in shown
    assert not simo_logging.are_progress_bars_disabled()
    hidden = bars(simo_logging.CommonArguments(disable_tqdm=True).applied())
    assert "search task_arithmetic" not in hidden and "it/s" not in hidden
    simo_logging.disable_progress_bars()
    try:
        hidden = bars(contextlib.nullcontext())
    finally:
        simo_logging.enable_progress_bars()
    assert "search task_arithmetic" not in hidden and "it/s" not in hidden

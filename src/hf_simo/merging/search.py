"""Choosing alpha (and density for TIES, lambda for consensus, ...) on a validation set.

Every candidate is scored by the paper's normalized performance (eq. 1): the mean over tasks of the merged model's
primary metric relative to the single-task baseline (given, or measured by evaluating each single-task checkpoint
on the same data). The search is cheap: one `SimoModel` holds every head; for each setting of the method options
the merged task vector tau_MTL is streamed once into memory, and each alpha only rewrites the encoder in place
(`theta_0 + alpha * tau_MTL`, with exactly the arithmetic of `merge_to_folder`, so the selected candidate merged to
disk has the very weights that were scored).

TALL masks (`method="tall_mask"`) give each task its own encoder theta_0 + alpha * m_t * tau_MTL; the search scores
each task with its own masked encoder, as the TALL-mask paper evaluates them (a merged SIMO model cannot hold
them; `consensus` is their one-encoder form).

The validation data is any re-iterable of batches `{"pixel_values": (B, 3, H, W) normalized, "labels": {task:
tensor}}`, such as a `DataLoader`, with labels for every task scored; it is evaluated by `hf_simo.evaluation.evaluate`
(the one evaluation loop). The candidates' table is logged (INFO) and returned (`SearchResult.table`).

Under `accelerate launch` with several processes (pass the `accelerator`), each process gives its own share of the
validation batches (e.g. `simo_batches(hf_simo.evaluation.process_shard(dataset, accelerator), ...)`): every
candidate's metric states are reduced exactly across processes (as `evaluate` does), so N processes encode 1/N of
the images each and every process ends with the table and the choice one process would make on all of them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from transformers.initialization import no_init_weights

from ..errors import DataError, OptionError, UnknownTaskError
from ..evaluation import evaluate
from ..hub import HubOptions
from ..metrics import MultiTaskMetrics, normalized_performance, render_table, task_normalized_performance
from ..modeling_simo import SimoModel
from ..utils.logging import get_logger, progress_bar
from .api import merge
from .arguments import DEFAULT_ALPHA_GRID, DEFAULT_MAX_RELATIVE_DISTANCE
from .io.sources import load_coefficients, open_sources
from .job import MergeJob, collect_options
from .merge_methods import apply_task_vector, final_scale, resolve_method, tall_mask, validate_alpha
from .plan import build_config, head_plan


logger = get_logger(__name__)
BASELINE_LABEL = "single-task"


@dataclasses.dataclass
class Candidate:
    """One evaluated setting: method, options, alpha, and what it scored."""

    method: str
    options: dict[str, Any]
    alpha: float
    results: dict[str, dict[str, float]]
    values: dict[str, float]
    normalized: dict[str, float]
    score: float

    @property
    def label(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in self.options.items() if v is not None)
        return f"{self.method}({options}{', ' if options else ''}alpha={self.alpha:g})"

    def merge_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that make `merge`/`merge_to_folder` build this candidate (not for `tall_mask`, whose
        tasks each use their own encoder)."""
        return {"method": self.method, "options": dict(self.options), "alpha": self.alpha}


@dataclasses.dataclass
class SearchResult:
    candidates: list[Candidate]
    baselines: dict[str, float]
    metric_names: dict[str, str]

    @property
    def best(self) -> Candidate:
        """Highest normalized performance (the first one on ties; NaN scores never win)."""
        scored = [c for c in self.candidates if not math.isnan(c.score)]
        if not scored:
            raise DataError("no candidate has a finite score (every candidate's metrics are NaN on this data)")
        return max(scored, key=lambda c: c.score)

    def table(self) -> str:
        rows = {BASELINE_LABEL: dict(self.baselines)}
        extra = {}
        best = self.best
        for candidate in self.candidates:
            rows[candidate.label] = candidate.values
            extra[candidate.label] = {
                "norm. perf.": f"{100 * candidate.score:.1f}%",
                "best": "*" if candidate is best else "",
            }
        return render_table(rows, BASELINE_LABEL, self.metric_names, extra_columns=extra)


def _batches(data: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    if iter(data) is data:  # a one-shot iterator: keep its batches, the search iterates once per candidate
        warnings.warn("validation data is a one-shot iterator; caching its batches in memory", stacklevel=3)
        return list(data)
    return data


def _grid(options: Mapping[str, Sequence[Any]] | None) -> list[dict[str, Any]]:
    if not options:
        return [{}]
    names = list(options)
    values = []
    for name in names:
        choices = options[name]
        if isinstance(choices, (str, bytes)) or not isinstance(choices, Iterable):
            choices = [choices]
        values.append(list(choices))
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def search(
    tasks: Sequence[Any],
    data: Iterable[Mapping[str, Any]],
    base: str | os.PathLike | Any | None = None,
    method: str = "task_arithmetic",
    *,
    alphas: Sequence[float] = DEFAULT_ALPHA_GRID,
    grid: Mapping[str, Sequence[Any]] | None = None,
    options: Mapping[str, Any] | None = None,
    baselines: Mapping[str, float] | None = None,
    coefficients: Any = None,
    device: str | torch.device | None = None,
    max_batches: int | None = None,
    hub: HubOptions | None = None,
    max_relative_distance: float | None = DEFAULT_MAX_RELATIVE_DISTANCE,
    accelerator=None,
) -> SearchResult:
    """Grid search of `alphas` x `grid` (method options, e.g. `{"density": [0.1, 0.2]}`) by normalized performance.

    Args:
        tasks, base: the sources, as in `merge`.
        data: validation batches (re-iterable; a one-shot iterator is cached).
        grid: option name -> values to try; `options`: fixed options.
        baselines: task -> the single-task model's primary metric (default: measured on `data`).
        hub: how Hub sources are read (`HubOptions`).
        accelerator: with several processes, `data` is this process's share and metrics are reduced across
            processes (`max_batches` then counts this process's batches); every process returns the same result.
    Logs the table of every candidate (`result.table()`) and the best one at INFO level.
    Returns a `SearchResult`; `result.best.merge_kwargs()` feeds `merge_to_folder`.
    """
    alphas = [validate_alpha(a) for a in alphas]
    if not alphas:
        raise OptionError("alphas must not be empty: give at least one α to try")
    settings = []
    for combo in _grid(grid):
        name, resolved = resolve_method(method, collect_options(options, combo))
        settings.append((name, resolved, combo))
    coefficients = load_coefficients(coefficients)
    data = _batches(data)
    if device is None:  # several processes: each on its own device (one process keeps to the CPU, as it always did)
        several = accelerator is not None and accelerator.num_processes > 1
        device = accelerator.device if several else "cpu"
    device = torch.device(device)
    with open_sources(base, tasks, hub=hub) as sources:
        first_job = MergeJob(sources, settings[0][0], settings[0][1], 1.0, None, None, allow_per_task=True)
        config = build_config(first_job, torch.float32)
        with no_init_weights():
            model = SimoModel(config)
        state = model.state_dict()
        for name, checkpoint, raw, _ in head_plan(first_job, torch.float32, True):
            state[name].copy_(checkpoint.reader.get(raw))
        theta0 = {key: sources.base.encoder_tensor(key).to(torch.float32) for key in first_job.keys}
        model.to(device).eval()
        encoder_state = model.dinov2.state_dict()
        metric_names = {name: spec.metric for name, spec in config.task_specs.items()}

        def load_encoder(tensors: Mapping[str, torch.Tensor]) -> None:
            for key, tensor in tensors.items():
                encoder_state[key].copy_(tensor)

        if baselines is None:
            baselines = {}
            for checkpoint in progress_bar(sources.tasks, desc="single-task baselines", leave=False):
                load_encoder({key: checkpoint.encoder_tensor(key) for key in first_job.keys})
                results = evaluate(model, data, [checkpoint.task], max_batches=max_batches, accelerator=accelerator)
                baselines[checkpoint.task] = results[checkpoint.task][metric_names[checkpoint.task]]
        else:
            missing = [t for t in config.task_names if t not in baselines]
            if missing:
                raise UnknownTaskError(f"no baseline value for task(s) {missing}; give all or none")
            baselines = {t: float(baselines[t]) for t in config.task_names}

        candidates: list[Candidate] = []
        evaluations = sum(len(alphas) * (len(sources.tasks) if name == "tall_mask" else 1) for name, _, _ in settings)
        bar = progress_bar(total=evaluations, desc=f"search {settings[0][0]}")

        def score(name: str, resolved: dict[str, Any], alpha: float, results: dict[str, dict[str, float]]) -> None:
            values = MultiTaskMetrics(config.task_specs).primary(results)
            per_task = task_normalized_performance(values, baselines, metric_names)
            total = normalized_performance(values, baselines, metric_names)
            candidates.append(Candidate(name, dict(resolved), alpha, results, values, per_task, total))

        for name, resolved, _ in settings:
            job = MergeJob(sources, name, resolved, 1.0, coefficients, max_relative_distance, allow_per_task=True)
            job.prepare()
            merged = {key: tau for key, _, tau in job.encoder(return_task_vector=True)}
            if name == "tall_mask":  # each task evaluated with its own encoder theta_0 + alpha * m_t * tau_MTL
                per_alpha: dict[float, dict[str, dict[str, float]]] = {alpha: {} for alpha in alphas}
                for checkpoint in sources.tasks:
                    masked = {}
                    for key in job.keys:
                        tau_t = checkpoint.encoder_tensor(key).to(torch.float32) - theta0[key]
                        masked[key] = merged[key] * tall_mask(tau_t, merged[key], resolved["tall_lambda"])
                    for alpha in alphas:
                        load_encoder({key: apply_task_vector(theta0[key], masked[key], alpha) for key in job.keys})
                        results = evaluate(
                            model, data, [checkpoint.task], max_batches=max_batches, accelerator=accelerator
                        )
                        per_alpha[alpha][checkpoint.task] = results[checkpoint.task]
                        bar.update(1)
                    del masked
                for alpha in alphas:
                    score(name, resolved, alpha, per_alpha[alpha])
            else:
                for alpha in alphas:
                    load_encoder(
                        {
                            key: apply_task_vector(
                                theta0[key],
                                merged[key],
                                final_scale(
                                    job.method, job.options, alpha, job.groups[key], job.num_layers, job.lines_alpha
                                ),
                            )
                            for key in job.keys
                        }
                    )
                    results = evaluate(model, data, None, max_batches=max_batches, accelerator=accelerator)
                    score(name, resolved, alpha, results)
                    bar.update(1)
            del merged
        bar.close()
    if accelerator is not None and accelerator.num_processes > 1:
        # the reduced metrics are the same everywhere already; the main process's copy makes the choice one choice
        from accelerate.utils import broadcast_object_list

        candidates, baselines = broadcast_object_list([candidates, baselines], from_process=0)
    result = SearchResult(candidates=candidates, baselines=baselines, metric_names=metric_names)
    logger.info("merge search on the validation data:\n%s", result.table())
    logger.info("best: %s (normalized performance %.1f%%)", result.best.label, 100 * result.best.score)
    return result


# ------------------------------------------------------------------------------------------------ search, then merge


@dataclasses.dataclass
class MergeOutcome:
    """A merged model and how its α was chosen (the search table, when α was tuned)."""

    model: SimoModel
    method: str
    options: dict[str, Any]
    alpha: float
    search_table: str | None = None
    seconds: float = 0.0


def search_and_merge(
    sources: Mapping[str, str],
    *,
    base: str | None = None,
    method: str = "task_arithmetic",
    options: Mapping[str, Any] | None = None,
    alpha: float | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHA_GRID,
    validation: Sequence[Mapping[str, Any]] | None = None,
    baselines: Mapping[str, float] | None = None,
    max_relative_distance: float | None = DEFAULT_MAX_RELATIVE_DISTANCE,
    hub: HubOptions | None = None,
    accelerator=None,
) -> MergeOutcome:
    """Merge single-task checkpoints into one `SimoModel`; with `alpha=None`, tune α on `validation` first.

    `max_relative_distance`: refuse task encoders farther than this from the base (None: warn only; see
    `hf_simo.merging.checks.check_fine_tuned`). `hub`: how Hub sources are read. `accelerator`: the α search is
    shared out across its processes (`validation`: this process's share; see `search`). Progress bars follow
    `hf_simo.utils.logging`'s switch (``--disable_tqdm``).
    """
    start = time.perf_counter()
    tasks = [f"{name}={source}" for name, source in sources.items()]
    options = dict(options or {})
    table = None
    if alpha is None:
        if validation is None:
            raise OptionError("alpha=None tunes α on validation data; pass validation batches or a fixed alpha")
        result = search(
            tasks,
            validation,
            base,
            method,
            alphas=alphas,
            options=options,
            baselines=baselines,
            hub=hub,
            max_relative_distance=max_relative_distance,
            accelerator=accelerator,
        )
        alpha, table = result.best.alpha, result.table()
    model = merge(
        tasks,
        base,
        method,
        options,
        alpha=alpha,
        hub=hub,
        max_relative_distance=max_relative_distance,
    )
    return MergeOutcome(model, method, options, float(alpha), table, time.perf_counter() - start)


__all__ = [
    "BASELINE_LABEL",
    "Candidate",
    "MergeOutcome",
    "SearchResult",
    "search",
    "search_and_merge",
]

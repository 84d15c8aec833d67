"""`MergeJob`: one streaming merge of the base and task encoders, tensor by tensor (computation; it reads tensors
only through `Checkpoint.encoder_tensor`, the injected reader of `hf_simo.merging.io`).

Only the encoder is merged; each task keeps its own head, copied unchanged. For each encoder tensor the base and each
task's tensor are read (by one reader thread, a key ahead of the compute), upcast to float32, turned into task
vectors and combined by the method (`merge_methods.merge_task_vectors`), one task at a time. Nothing ever holds a
whole checkpoint, or more than two keys' tensors, so peak memory is a few tensors whatever the number of tasks.

Every method reads each input at most twice. Methods whose statistics span the whole encoder take a read-only pass
first (`MergeJob.prepare`):

- a global magnitude trim (TIES, magnitude pruning, and consensus/LiNeS on a TIES base) histograms the top 16 bits
  of every |tau_t| (radix select, `select.StreamingKthValue`); the merge pass then finishes each task's exact
  threshold and the global sign count while it merges with provisional thresholds, and the few entries that depend
  on the exact values are merged again and patched into the written tensors (`TwoReadMerge`);
- LiNeS with an automatic alpha on a TIES base (the one method read four times: alpha scales every output, so the
  norms come before the merge pass) takes the separate passes: radix 1/2, radix 2/2 + sign election (sharing one
  read, `_radix_and_sign_pass`), ||sum tau_t|| and ||tau_MTL||, merge; so does a merge into a sink that cannot
  rewrite a tensor (`search`), or one whose deferred entries would not fit `DEFER_BUDGET`.

The first pass also checks every tensor for NaN/inf and measures each task's distance to the base
(`checks.check_fine_tuned`); `check_merged`/`check_update` refuse a merged tensor that is not finite and a merged
encoder farther than `MAX_RELATIVE_UPDATE`·‖θ_0‖ from θ_0 (an α that overflows, not a model).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from ..errors import MergeOptionError
from ..utils.logging import progress_bar
from .checks import DistanceStats, check_fine_tuned
from .io.sources import MergeSources
from .layers import layer_group, layer_group_names, resolve_coefficients
from .merge_methods import (
    apply_task_vector,
    elect_sign,
    final_scale,
    lines_auto_alpha,
    merge_task_vectors,
    resolve_method,
    sign_count,
    squared_norm,
    task_arithmetic,
    trim_scope,
    uses_sign_election,
    validate_alpha,
)
from .merge_methods.dare import MASK_VERSION
from .select import StreamingKthValue, kth_rank
from .threads import serial_reductions
from .two_reads import Trimmed, TwoReadMerge, radix_and_sign_pass


# Fine-tuning moves an encoder well under ‖θ_0‖ (the provenance check refuses task vectors above 1.0·‖θ_0‖), so a merge
# landing 10·‖θ_0‖ from θ_0 (eight such task vectors, all aligned, at α = 1 land at 8) comes from an overflowing α.
MAX_RELATIVE_UPDATE = 10.0
# The combined radix/sign pass holds the entries of the threshold bins (typically ~0.3% per task for 16-bit digits);
# above this fraction of one float32 encoder it falls back to a separate sign-election pass.
DEFER_BUDGET = 0.25


class TaskVectorsAt(Sequence):
    """Task vectors of one encoder tensor: the first access of each task takes the tensor the reader thread
    prefetched (`MergeJob.iterate`), a later one reads it from disk again unless `hold` keeps it."""

    def __init__(
        self,
        job: MergeJob,
        key: str,
        base: torch.Tensor,
        validate: bool,
        hold: bool = False,
        prefetched: list[torch.Tensor | None] | None = None,
    ):
        self.job, self.key, self.base, self.validate = job, key, base, validate
        self._checked: set[int] = set()
        self._held: dict[int, torch.Tensor] | None = {} if hold else None
        self._prefetched = prefetched

    def __len__(self) -> int:
        return len(self.job.tasks)

    def __getitem__(self, index: int) -> torch.Tensor:
        """tau_t of this tensor; with `hold`, read once and kept for the next access (methods that read each task
        twice, TIES' election then disjoint merge, read the checkpoint once: T tensors of one key in memory)."""
        if self._held is not None:
            if index not in self._held:
                self._held[index] = self._read(index)
            return self._held[index]
        return self._read(index)

    def _read(self, index: int) -> torch.Tensor:
        checkpoint = self.job.tasks[index]
        stored = None
        if self._prefetched is not None:
            stored, self._prefetched[index] = self._prefetched[index], None
        if stored is None:
            stored = checkpoint.encoder_tensor(self.key)
        finetuned = stored.to(torch.float32)
        first = self.validate and index not in self._checked
        if first:
            with serial_reductions():
                self.job.stats.add_task(index, checkpoint, self.key, self.base, finetuned)
        if checkpoint.reader.owns_tensors:  # a fresh buffer read from disk: subtract in place, one allocation less
            tau = finetuned.sub_(self.base)
        else:
            tau = finetuned - self.base
        if first:
            with serial_reductions():
                self.job.stats.add_task_vector(index, tau)
            self._checked.add(index)
        return tau


class MergeJob:
    """One merge: resolved method and coefficients, global statistics, and the final streaming pass."""

    def __init__(
        self,
        sources: MergeSources,
        method: str,
        options: Mapping[str, Any] | None,
        alpha: float,
        coefficients: Any,
        max_relative_distance: float | None,
        allow_per_task: bool = False,
    ):
        self.base, self.tasks = sources.base, sources.tasks
        self.method, self.options = resolve_method(method, options)
        if not allow_per_task:
            check_single_encoder(self.method)
        self.alpha = validate_alpha(alpha)
        self.num_layers = self.base.backbone_config.num_hidden_layers
        self.keys = sorted(self.base.encoder)
        self.groups = {key: layer_group(key, self.num_layers) for key in self.keys}
        self.task_names = [t.task for t in self.tasks]
        self.coefficients = resolve_coefficients(coefficients, self.task_names, self.num_layers + 2)
        self.max_relative_distance = max_relative_distance
        self.stats = DistanceStats(len(self.tasks))
        self.distances: dict[str, dict[str, float]] | None = None
        self.thresholds: list[float | None] | None = None
        self.majority: float | None = None
        self.lines_alpha: float | None = self.options.get("lines_alpha") if self.method == "lines" else None
        self._validated = False
        self._shares_sign_pass: bool | None = None  # False once the deferral budget refused it
        self.numel = sum(numel(self.base.encoder_info(key)[1]) for key in self.keys)
        self.relative_update: float | None = None
        self._squares: dict[str, tuple[float, float]] = {}  # key -> (||θ − θ_0||², ||θ_0||²), summed in key order
        self._two_reads: TwoReadMerge | None = None

    # ------------------------------------------------------------------ passes

    def _weights(self, key: str) -> list[float] | None:
        if self.coefficients is None:
            return None
        group = self.groups[key]
        return [row[group] for row in self.coefficients]

    def iterate(self, description: str, hold: bool = False) -> Iterator[tuple[str, TaskVectorsAt]]:
        validate = not self._validated
        bar = progress_bar(self.keys, desc=description, unit="tensor", leave=False)
        # One reader thread reads the next key's tensors (base, then each task) while this one computes: reading
        # overlaps compute, and at most two keys' tensors are in memory (the file reads release the GIL).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf_simo-read") as reader:
            pending = reader.submit(self._read_key, self.keys[0]) if self.keys else None
            for position, key in enumerate(bar):
                stored, prefetched = pending.result()
                if position + 1 < len(self.keys):
                    pending = reader.submit(self._read_key, self.keys[position + 1])
                base = stored.to(torch.float32)
                if validate:
                    with serial_reductions():
                        self.stats.add_base(self.base, key, base)
                yield key, TaskVectorsAt(self, key, base, validate, hold, prefetched)
        bar.close()
        if validate:
            self._validated = True
            self.distances = check_fine_tuned(self.tasks, self.stats, self.max_relative_distance)

    def _read_key(self, key: str) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """The stored tensors of one key: base, then every task (in the reader thread)."""
        return self.base.encoder_tensor(key), [checkpoint.encoder_tensor(key) for checkpoint in self.tasks]

    def passes(self) -> list[str]:
        """Names of the passes this merge reads the checkpoints in (the last one writes). A global sign election
        shares the second radix pass (see `_radix_and_sign_pass`) unless its deferred entries would not fit."""
        names = []
        trims = trim_scope(self.method, self.options) == "global" and kth_rank(self.numel, self.options["density"])
        if self._two_reads is not None:
            return [
                "threshold (radix 1/2)",
                "merge + threshold (radix 2/2)" + (" + sign election" if self.needs_global_majority() else ""),
            ]
        if trims:
            names.append("threshold (radix 1/2)")
            if self.needs_global_majority() and self._shares_sign_pass is not False:
                names.append("threshold (radix 2/2) + sign election")
            else:
                names.append("threshold (radix 2/2)")
        if self.needs_global_majority() and not (trims and self._shares_sign_pass is not False):
            names.append("sign election")
        if self._needs_norms():
            names.append("LiNeS norms")
        return names + ["merge"]

    def needs_global_majority(self) -> bool:
        return uses_sign_election(self.method, self.options) and trim_scope(self.method, self.options) == "global"

    def _needs_norms(self) -> bool:
        if self.method != "lines" or self.options["lines_alpha"] is not None:
            return False
        return self.options["base_method"] == "ties" or self.coefficients is not None

    def two_reads_possible(self) -> bool:
        """Whether the global statistics can be finished during the merge pass (`TwoReadMerge`): a global trim, and no
        LiNeS norms (whose automatic alpha scales every output, so it must be known before the first one)."""
        if trim_scope(self.method, self.options) != "global" or self._needs_norms():
            return False
        return kth_rank(self.numel, self.options["density"]) is not None

    def prepare(self, patchable: bool = False) -> None:
        """Run the read-only passes: exact global thresholds, global majority sign, LiNeS norms.

        With `patchable` (the sink can read back and rewrite a written tensor) a global trim reads each input twice:
        one radix pass, then the merge pass, which also finishes the thresholds and the sign count; the few entries
        that depend on their final values are computed afterwards (`patches`) and rewritten in place."""
        passes = self.passes()
        total = len(passes)
        step = 0
        if trim_scope(self.method, self.options) == "global":
            rank = kth_rank(self.numel, self.options["density"])
            self.thresholds = [None] * len(self.tasks)
            if rank is not None:
                selector = StreamingKthValue([rank] * len(self.tasks), counts=[self.numel] * len(self.tasks))
                step += 1
                for _, vectors in self.iterate(f"pass {step}/{total}: {passes[step - 1]}"):
                    for t in range(len(vectors)):
                        selector.update(t, vectors[t], magnitudes=True)
                selector.next_pass()
                if patchable and self.two_reads_possible() and self._deferral_fits(selector):
                    self._two_reads = TwoReadMerge(self, selector)
                    self.thresholds = self._two_reads.provisional
                    self.majority = 1.0 if self.needs_global_majority() else None  # provisional (see TwoReadMerge)
                    self._final_description = f"pass 2/2: {self.passes()[-1]}"
                    return
                step += 1
                if self.needs_global_majority() and self._deferral_fits(selector):
                    radix_and_sign_pass(self, selector, f"pass {step}/{total}: {passes[step - 1]}")
                else:
                    self._shares_sign_pass = False
                    passes = self.passes()
                    total = len(passes)
                    for _, vectors in self.iterate(f"pass {step}/{total}: {passes[step - 1]}"):
                        for t in range(len(vectors)):
                            selector.update(t, vectors[t], magnitudes=True)
                    selector.next_pass()
                    self.thresholds = selector.values()
        if self.needs_global_majority() and self.majority is None:
            step += 1
            count = 0
            for _, vectors in self.iterate(f"pass {step}/{total}: {passes[step - 1]}"):
                trimmed = Trimmed(vectors, self.thresholds)
                count += sign_count(elect_sign(trimmed, majority=0.0))
            self.majority = float(count > 0) - float(count < 0)
        if self._needs_norms():
            step += 1
            sum_sq = merged_sq = 0.0
            for key, vectors in self.iterate(f"pass {step}/{total}: {passes[step - 1]}", hold=True):
                sum_tau, merged_tau = task_arithmetic(vectors), self.merge_key(key, vectors)
                with serial_reductions():
                    sum_sq += squared_norm(sum_tau)
                    merged_sq += squared_norm(merged_tau)
            self.lines_alpha = lines_auto_alpha(sum_sq, merged_sq, len(self.tasks))
        elif self.method == "lines" and self.lines_alpha is None:
            self.lines_alpha = lines_auto_alpha(1.0, 1.0, len(self.tasks))  # TA base, unit weights: exactly 1/T
        self._final_description = f"pass {total}/{total}: merge"

    def _deferral_fits(self, selector: StreamingKthValue) -> bool:
        """Whether the entries of the threshold bins (known exactly after the first radix pass) fit
        `DEFER_BUDGET` x one float32 encoder when held as T float32 values each (at most Σ_t bin counts)."""
        bins = [selector.threshold_bin(t) for t in range(len(self.tasks))]
        deferred = sum(count for _, count in filter(None, bins))
        return deferred * len(self.tasks) <= DEFER_BUDGET * self.numel

    def _reads_tasks_twice(self) -> bool:
        """Whether the method reads each task vector twice per tensor (TIES' election, consensus' TALL masks)."""
        return uses_sign_election(self.method, self.options) or self.method in ("consensus", "tall_mask")

    def merge_key(self, key: str, vectors: Sequence[torch.Tensor]) -> torch.Tensor:
        return merge_task_vectors(
            self.method,
            self.options,
            vectors,
            self._weights(key),
            key=key,
            thresholds=self.thresholds,
            majority=self.majority,
            tasks=self.task_names,
        )

    def scale(self, key: str) -> float:
        return final_scale(self.method, self.options, self.alpha, self.groups[key], self.num_layers, self.lines_alpha)

    def encoder(self, return_task_vector: bool = False) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
        """The final pass: (key, theta_0 in float32, merged theta in float32) per encoder tensor, in key order;
        with `return_task_vector`, the unscaled tau_MTL instead of theta."""
        description = getattr(self, "_final_description", "merge")
        two_reads = self._two_reads
        for key, vectors in self.iterate(description, hold=self._reads_tasks_twice() or two_reads is not None):
            if two_reads is not None:
                two_reads.observe(key, vectors)
            merged = self.merge_key(key, vectors)
            yield (
                key,
                vectors.base,
                merged if return_task_vector else apply_task_vector(vectors.base, merged, self.scale(key)),
            )

    @property
    def deferred_keys(self) -> set[str]:
        """Keys of the merge pass whose output has entries still to be patched (`patches`)."""
        return set() if self._two_reads is None else self._two_reads.keys

    def patches(self) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
        """After the merge pass of a two-read merge: (key, flat indices, merged theta at those indices in float32)
        for every output entry that depended on the final thresholds or majority sign (none otherwise)."""
        if self._two_reads is None:
            return
        yield from self._two_reads.finish()

    # ------------------------------------------------------------------ result checks

    def check_merged(self, key: str, base: torch.Tensor, merged: torch.Tensor) -> None:
        """Refuse a merged tensor (in its output dtype) that is not finite; add it to ‖θ − θ_0‖."""
        if not merged.is_floating_point():
            return
        difference = merged.float() - base
        with serial_reductions():
            update = float(torch.linalg.vector_norm(difference))
        # The base is finite (checked on reading), so a NaN/inf in the merged tensor makes this norm non-finite: the
        # element-wise scan runs only then (a finite tensor whose norm overflows is refused by check_update).
        if not math.isfinite(update) and not torch.isfinite(merged).all():
            kind = "NaN" if torch.isnan(merged).any() else "inf"
            raise MergeOptionError(
                f"the merged encoder tensor {key!r} contains {kind} in {str(merged.dtype).replace('torch.', '')} "
                f"(alpha={self.alpha:g}): the scaled task vector overflows; use a smaller alpha (typically 0.1 to 1.5)"
            )
        with serial_reductions():
            self._squares[key] = (update**2, float(torch.linalg.vector_norm(base)) ** 2)

    def check_update(self) -> None:
        """After the last `check_merged`: refuse a merged encoder farther than `MAX_RELATIVE_UPDATE`·‖θ_0‖ from θ_0."""
        update_sq = base_sq = 0.0
        for key in self.keys:  # key order, whatever order the checks ran in (patched tensors are checked last)
            if key in self._squares:
                update_sq += self._squares[key][0]
                base_sq += self._squares[key][1]
        ratio = math.sqrt(update_sq / base_sq) if base_sq > 0 else math.sqrt(update_sq)
        self.relative_update = ratio
        if not math.isfinite(ratio) or ratio > MAX_RELATIVE_UPDATE:
            raise MergeOptionError(
                f"the merged encoder is {ratio:.3g}·‖θ_0‖ away from the base θ_0 (alpha={self.alpha:g}), farther than "
                f"{MAX_RELATIVE_UPDATE:g}·‖θ_0‖: fine-tuning moves an encoder less than ‖θ_0‖, so alpha is far too "
                "large; use a smaller alpha (typically 0.1 to 1.5)"
            )

    # ------------------------------------------------------------------ record

    def record(self) -> dict[str, Any]:
        """What `config.merge` records: method, options, scaling, sources with commits, statistics."""
        from ..version import __version__

        statistics: dict[str, Any] = {"encoder_parameters": self.numel}
        if self.distances is not None:
            statistics["distance_to_base"] = self.distances
        if self.thresholds is not None:
            statistics["global_thresholds"] = {t.task: v for t, v in zip(self.tasks, self.thresholds)}
        if self.majority is not None:
            statistics["global_majority_sign"] = self.majority
        if self.relative_update is not None:
            statistics["relative_update"] = self.relative_update  # ‖θ − θ_0‖ / ‖θ_0‖ of the merged encoder
        record: dict[str, Any] = {
            "method": self.method,
            "options": dict(self.options),
            "alpha": self.alpha,
            "coefficients": self.coefficients,
            "coefficient_groups": layer_group_names(self.num_layers) if self.coefficients is not None else None,
            "base": self.base.provenance(),
            "sources": [t.provenance() for t in self.tasks],
            "statistics": statistics,
            "hf_simo_version": __version__,
        }
        if self.method == "lines":
            record["lines_alpha"] = self.lines_alpha
        if self.method == "dare":
            record["dare_masks"] = MASK_VERSION  # the mask definition (earlier merges keyed masks by position)
        return record


def numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def collect_options(options: Mapping[str, Any] | None, method_options: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(options or {})
    for name, value in method_options.items():
        if value is None:
            continue
        if name in merged and merged[name] != value:
            raise MergeOptionError(f"option {name!r} given twice ({merged[name]!r} and {value!r})")
        merged[name] = value
    return merged


def check_single_encoder(method: str) -> None:
    if method == "tall_mask":
        raise MergeOptionError(
            "TALL masks give each task its own encoder (theta_0 + m_t * tau_MTL), which a SIMO model with one shared "
            "encoder cannot hold. Use method='consensus' (TALL masks + consensus: one encoder), or score TALL masks "
            "with hf_simo.merging.search(..., method='tall_mask')"
        )


__all__ = [
    "DEFER_BUDGET",
    "MAX_RELATIVE_UPDATE",
    "MergeJob",
    "TaskVectorsAt",
    "Trimmed",
    "TwoReadMerge",
    "check_single_encoder",
    "collect_options",
    "numel",
]

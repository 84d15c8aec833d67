"""The second read of a two-read global-trim merge (`TwoReadMerge`, and `radix_and_sign_pass`, the second radix pass sharing its read with the sign count; used by `job.MergeJob`): provisional thresholds
at the threshold bins' edges, the exact statistics finished during the merge, and the deferred entries merged again
once they are known. Computation only."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch

from .merge_methods import apply_task_vector, elect_sign, sign_count, trim
from .select import StreamingKthValue, magnitude_bins


if TYPE_CHECKING:
    from .job import MergeJob, TaskVectorsAt


class TwoReadMerge:
    """The second read of a two-read global-trim merge: merge every key with provisional statistics, finish the exact
    ones on the way, and keep the few entries whose output depends on them.

    Exact scheme (and why): after the first radix pass (`select.StreamingKthValue`: a histogram of the top 16 bits
    of |tau_t|) each task's exact threshold is known to lie in one bin of 2^16 (its `threshold_bin`): the values
    above that bin are kept by the final trim, those below are zeroed. Trimming at the bin's lower edge (the
    provisional threshold) therefore gives every entry outside the bin its final trimmed value, with the same
    `trim`. The merge pass runs the radix pass 2/2 (the low 16 bits of the in-bin values) while it merges with the
    provisional thresholds; an entry with a task value in its task's threshold bin (~0.3% of the entries per task)
    is *deferred*: its T task-vector values and its base value are kept (a few MiB) and merged again, with the same
    method function, once the thresholds are exact. A sign-electing method also needs the global majority sign,
    which only entries whose summed trimmed value is exactly 0 (and some trimmed value is not) receive: the count
    is accumulated here exactly as the separate sign-election pass does (`sign_count`, integers), with the
    deferred entries counted once the thresholds are known, and those zero-sum entries are deferred too. Every
    method on this path is element-wise given its thresholds and majority, so merging a deferred entry alone gives
    bit for bit the value the whole tensor would have. A one-pass exact selection would need all values or a good
    guess of the bin; this needs neither, and a deferral that would not fit `DEFER_BUDGET` falls back to the
    separate passes.
    """

    def __init__(self, job: MergeJob, selector: StreamingKthValue):
        self.job, self.selector = job, selector
        self.bins = [selector.threshold_bin(t) for t in range(len(job.tasks))]
        self.provisional: list[float | None] = [None if b is None else _bin_lower_edge(b[0]) for b in self.bins]
        self.elects = job.needs_global_majority()
        self.count = 0
        self.deferred: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        self.keys: set[str] = set()

    def observe(self, key: str, vectors: TaskVectorsAt) -> None:
        """Radix pass 2/2 and the sign count over one key's task vectors; remember its deferred entries."""
        flats = []
        ambiguous = None
        for t in range(len(vectors)):
            x = vectors[t].reshape(-1)
            in_bin = self.selector.update(t, x, magnitudes=True)  # the entries of task t's threshold bin
            flats.append(x)
            if in_bin is not None:
                ambiguous = in_bin if ambiguous is None else ambiguous.logical_or_(in_bin)
        deferred = ambiguous
        if self.elects:
            total = nonzero = None
            for t, x in enumerate(flats):
                kept = trim(x, self.provisional[t])
                total = torch.zeros_like(x) if total is None else total
                total += kept
                nonzero = kept != 0 if nonzero is None else nonzero.logical_or_(kept != 0)
            sign = torch.sign(total)
            if ambiguous is not None:
                sign.masked_fill_(ambiguous, 0.0)
            self.count += sign_count(sign)
            zero_sum = (total == 0).logical_and_(nonzero)  # their sign is the global majority's
            deferred = zero_sum if deferred is None else deferred.logical_or_(zero_sum)
        if deferred is None or not bool(deferred.any()):
            return
        index = deferred.nonzero().reshape(-1)
        values = torch.stack([x[index] for x in flats])
        base = vectors.base.reshape(-1)[index]
        self.deferred.append((key, index, values, base, None if ambiguous is None else ambiguous[index]))
        self.keys.add(key)

    def finish(self) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
        """Exact thresholds and majority, then the deferred entries merged with them (key order)."""
        job = self.job
        self.selector.next_pass()
        job.thresholds = self.selector.values()
        if self.elects:
            count = self.count
            for _, _, values, _, ambiguous in self.deferred:
                if ambiguous is not None and bool(ambiguous.any()):
                    count += sign_count(elect_sign(Trimmed(list(values[:, ambiguous]), job.thresholds), majority=0.0))
            job.majority = float(count > 0) - float(count < 0)
        self.deferred.reverse()  # pop from the end, in key order, releasing each block once merged
        while self.deferred:
            key, index, values, base, _ = self.deferred.pop()
            merged = job.merge_key(key, list(values))
            yield key, index, apply_task_vector(base, merged, job.scale(key))


def _bin_lower_edge(high: int) -> float:
    """The smallest float32 whose high radix digit is `high` (0.0 for the lowest bin: nothing is trimmed below)."""
    return float(torch.tensor([high << 16], dtype=torch.int32).view(torch.float32).item())


class Trimmed(Sequence):
    def __init__(self, vectors: Sequence[torch.Tensor], thresholds: list[float | None]):
        self.vectors, self.thresholds = vectors, thresholds

    def __len__(self) -> int:
        return len(self.vectors)

    def __getitem__(self, index: int) -> torch.Tensor:
        return trim(self.vectors[index], self.thresholds[index])


def radix_and_sign_pass(job: MergeJob, selector: StreamingKthValue, description: str) -> None:
    """The second radix pass and the global sign count in one read of every task.

    The thresholds are not known yet, but each lies in its task's threshold bin (`threshold_bin`): an entry in a
    higher bin is kept by the final trim, one in a lower bin is zeroed. So every entry with no task value in its
    threshold bin gets its final trimmed values, sum and elected sign in this pass; the others (a fraction of a
    percent per task) keep their T task-vector values and are counted once the thresholds are known, with the
    same `trim` and the same task-order sum: the count, hence the majority sign, is exactly the separate pass's.
    """
    bins = [selector.threshold_bin(t) for t in range(len(job.tasks))]
    count = 0
    deferred: list[torch.Tensor] = []
    for _, vectors in job.iterate(description):
        total = None
        ambiguous = None
        values = []
        for t in range(len(vectors)):
            x = vectors[t].reshape(-1)
            selector.update(t, x, magnitudes=True)
            values.append(x)
            if bins[t] is None:
                kept = x
            else:
                high = magnitude_bins(x)
                in_bin = high == bins[t][0]
                ambiguous = in_bin if ambiguous is None else ambiguous.logical_or_(in_bin)
                kept = x * (high > bins[t][0])  # x or ±0: the same sum as trim's x or +0
            total = torch.zeros_like(x) if total is None else total
            total += kept
        sign = torch.sign(total)
        if ambiguous is not None and bool(ambiguous.any()):
            deferred.append(torch.stack([x[ambiguous] for x in values]))
            sign.masked_fill_(ambiguous, 0.0)
        count += sign_count(sign)
    selector.next_pass()
    job.thresholds = selector.values()
    for block in deferred:
        count += sign_count(elect_sign(Trimmed(list(block), job.thresholds), majority=0.0))
    job.majority = float(count > 0) - float(count < 0)


__all__ = ["Trimmed", "TwoReadMerge", "radix_and_sign_pass"]

"""Exact k-th smallest magnitude over a vector too large to hold, by radix selection on float32 bit patterns.

TIES trims each task vector to its top-k% magnitudes *over the whole flattened encoder* (Yadav et al.'s reference
implementation): `threshold = kthvalue(|tau|, d - int(d * density))`, keep `|tau| >= threshold`. Holding T flattened
task vectors to call `kthvalue` costs T checkpoints of memory; streaming needs the same threshold, bit for bit, from
tensors seen one at a time.

For non-negative IEEE-754 float32 values the bit patterns, read as integers, are ordered like the values (+0 < the
subnormals < the normals < +inf). So the k-th smallest value is found digit by digit: one pass histograms the top
16 bits of every value and locates the bin holding rank k; a second pass histograms the low 16 bits of the values in
that bin only. The two digits are the exact bit pattern of the k-th smallest value: no approximation, no sort, and
memory of two 65,536-bin histograms per task whatever the vector length.
"""

from __future__ import annotations

import sys

import torch


_DIGIT_BITS = 16
_NUM_BINS = 1 << _DIGIT_BITS
_LOW_MASK = _NUM_BINS - 1


def keep_count(numel: int, density: float) -> int:
    """How many entries the reference keeps: `int(numel * density)` (the Python expression, for exact parity)."""
    return int(numel * density)


def kth_rank(numel: int, density: float) -> int | None:
    """1-based rank of the threshold in ascending order (`d - int(d * k)`), or None when everything is kept.

    The reference cannot trim at density 1 (`kthvalue(0)` fails); tall_masks short-circuits it to "keep all", which
    is what None means here.
    """
    kept = keep_count(numel, density)
    rank = numel - kept
    return None if rank <= 0 else rank


def kth_smallest(values: torch.Tensor, rank: int) -> float:
    """`values.kthvalue(rank)` for a flat float32 tensor held in memory (the reference operation)."""
    return float(values.reshape(-1).kthvalue(rank).values.item())


_HIGH_ABS_MASK = 0x7FFF  # the sign bit is the top bit of the high 16-bit word
_LITTLE_ENDIAN = sys.byteorder == "little"


def _digits(values: torch.Tensor, magnitudes: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) 16-bit digits of the float32 bit patterns, as int16 views where possible (no copy).

    On little-endian machines word 2i+1 of the int16 view is the high half of float i. Clearing the sign bit of the
    high word is |x| (-0.0 included), without a float pass. The high digits are returned non-negative; the low ones
    are signed int16 and masked to 0..65535 after selection.
    """
    if values.dtype != torch.float32:
        raise TypeError(f"radix selection works on float32 values, got {values.dtype}")
    flat = values.reshape(-1).contiguous()
    if _LITTLE_ENDIAN:
        words = flat.view(torch.int16)
        high, low = words[1::2], words[0::2]
    else:  # portable path
        bits = flat.view(torch.int32)
        high, low = bits >> _DIGIT_BITS, bits
    if magnitudes:
        high = high & _HIGH_ABS_MASK
    return high, low


class StreamingKthValue:
    """Exact k-th smallest of non-negative float32 values streamed in chunks, for several streams at once.

    Usage: call `update(stream, chunk)` for every chunk of every stream, `next_pass()`, call `update` again with the
    same chunks (any order, any chunking), then read `values()`. Stream `i` is ranked by `ranks[i]` (1-based,
    ascending); a rank of None means "no threshold" and is skipped. Values must be >= 0 (magnitudes) and finite.
    """

    def __init__(self, ranks: list[int | None], counts: list[int] | None = None):
        self.ranks = list(ranks)
        self.counts = counts
        self.pass_index = 0
        self._seen = [0] * len(ranks)
        self._hist = [torch.zeros(_NUM_BINS, dtype=torch.int64) if r is not None else None for r in ranks]
        self._prefix: list[int | None] = [None] * len(ranks)
        self._rank_in_bin: list[int | None] = [None] * len(ranks)
        self._bin_count: list[int] = [0] * len(ranks)
        self._result: list[float | None] = [None] * len(ranks)

    @property
    def active(self) -> bool:
        """Whether any stream still needs data (False: nothing to trim, skip the passes)."""
        return any(r is not None for r in self.ranks) and self.pass_index < 2

    def update(self, stream: int, chunk: torch.Tensor, magnitudes: bool = False) -> torch.Tensor | None:
        """Add a chunk of stream `stream`; with `magnitudes=True` the chunk holds signed values and |chunk| is
        ranked (the sign bit is cleared on the integer patterns, which is exactly `abs`, -0.0 included).

        In the second pass, returns the flat boolean mask of the chunk's values in the threshold bin (those whose
        trim the exact threshold decides), else None."""
        rank = self.ranks[stream]
        if rank is None:
            return None
        high, low = _digits(chunk, magnitudes)
        if self.pass_index == 0:
            self._seen[stream] += high.numel()
            if not magnitudes and high.numel() and int(high.min()) < 0:
                raise ValueError("radix selection needs non-negative values (magnitudes); got a negative value")
            self._hist[stream] += torch.bincount(high, minlength=_NUM_BINS)
            return None
        if self.pass_index == 1:
            in_bin = high == self._prefix[stream]
            selected = low[in_bin]
            if selected.numel():
                self._hist[stream] += torch.bincount(selected.to(torch.int32) & _LOW_MASK, minlength=_NUM_BINS)
            return in_bin
        raise RuntimeError("both radix passes are done; read values()")

    def next_pass(self) -> None:
        """Close the current pass: locate each stream's bin (pass 1) or its exact value (pass 2)."""
        for stream, rank in enumerate(self.ranks):
            if rank is None:
                continue
            hist = self._hist[stream]
            if self.pass_index == 0:
                total = self._seen[stream]
                expected = None if self.counts is None else self.counts[stream]
                if expected is not None and total != expected:
                    raise RuntimeError(f"stream {stream}: saw {total} values, expected {expected}")
                if not 1 <= rank <= total:
                    raise ValueError(f"stream {stream}: rank {rank} outside [1, {total}]")
                cumulative = hist.cumsum(0)
                bin_index = int(torch.searchsorted(cumulative, torch.tensor(rank, dtype=torch.int64)).item())
                below = int(cumulative[bin_index - 1].item()) if bin_index > 0 else 0
                self._prefix[stream] = bin_index
                self._rank_in_bin[stream] = rank - below
                self._bin_count[stream] = int(hist[bin_index].item())
            else:
                cumulative = hist.cumsum(0)
                target = torch.tensor(self._rank_in_bin[stream], dtype=torch.int64)
                low = int(torch.searchsorted(cumulative, target).item())
                self._result[stream] = _as_float((self._prefix[stream] << _DIGIT_BITS) | low)
            self._hist[stream] = torch.zeros(_NUM_BINS, dtype=torch.int64)
        self.pass_index += 1
        if self.pass_index == 2:
            self._hist = [None] * len(self.ranks)

    def threshold_bin(self, stream: int) -> tuple[int, int] | None:
        """After the first pass: (high digit of the bin holding stream's k-th value, entries in that bin), or None
        (no rank). Values in higher bins are above the k-th value, values in lower bins below it."""
        if self.ranks[stream] is None or self.pass_index < 1:
            return None
        return self._prefix[stream], self._bin_count[stream]

    def values(self) -> list[float | None]:
        """The k-th smallest value of each stream (None where the rank was None)."""
        if self.pass_index < 2 and any(r is not None for r in self.ranks):
            raise RuntimeError("call update() over all data twice, with next_pass() after each pass")
        return list(self._result)


def magnitude_bins(values: torch.Tensor) -> torch.Tensor:
    """The high radix digit of |x| for float32 values (what `threshold_bin` compares against), without a copy."""
    return _digits(values, magnitudes=True)[0]


def kth_smallest_magnitude(values: torch.Tensor, rank: int) -> float:
    """`values.abs().kthvalue(rank)` for a float32 tensor in memory, by the same two-digit radix selection (exact,
    and several times faster than `kthvalue`, which partially sorts)."""
    high, low = _digits(values, magnitudes=True)
    if not 1 <= rank <= high.numel():
        raise ValueError(f"rank {rank} outside [1, {high.numel()}]")
    cumulative = torch.bincount(high, minlength=_NUM_BINS).cumsum(0)
    prefix = int(torch.searchsorted(cumulative, torch.tensor(rank, dtype=torch.int64)).item())
    below = int(cumulative[prefix - 1].item()) if prefix > 0 else 0
    selected = low[high == prefix].to(torch.int32) & _LOW_MASK
    cumulative = torch.bincount(selected, minlength=_NUM_BINS).cumsum(0)
    digit = int(torch.searchsorted(cumulative, torch.tensor(rank - below, dtype=torch.int64)).item())
    return _as_float((prefix << _DIGIT_BITS) | digit)


def _as_float(pattern: int) -> float:
    return float(torch.tensor([pattern], dtype=torch.int32).view(torch.float32).item())


def streaming_kth_smallest(chunks: list[torch.Tensor], rank: int) -> float:
    """Convenience: the exact k-th smallest of the concatenation of `chunks` (non-negative float32), two passes."""
    selector = StreamingKthValue([rank])
    for _ in range(2):
        for chunk in chunks:
            selector.update(0, chunk)
        selector.next_pass()
    return selector.values()[0]


__all__ = [
    "StreamingKthValue",
    "keep_count",
    "kth_rank",
    "kth_smallest",
    "kth_smallest_magnitude",
    "magnitude_bins",
    "streaming_kth_smallest",
]

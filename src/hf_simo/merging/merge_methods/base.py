"""What a merging method is: `MethodSpec` (its options with defaults and validators, and its merge function), and
the option validators the family files build their specs from (mergekit's `merge_methods/base.py`).

A method's `merge(task_vectors, weights, options, *, key, thresholds, majority) -> tau_MTL` receives resolved options
(defaults filled in, validated) and the statistics the streaming merge computes over the whole encoder (`thresholds`:
one global magnitude threshold per task, `majority`: the global majority sign); `key` is the tensor's name (DARE seeds
its drop masks with it, and with `tasks`, the task names).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ...errors import MergeOptionError
from .common import TaskVectors, Weight, check_density


REQUIRED = object()  # an option without a default: the method needs it
BASE_METHODS = ("task_arithmetic", "ties")


class MergeFunction(Protocol):
    def __call__(
        self,
        task_vectors: TaskVectors,
        weights: Sequence[Weight] | None,
        options: Mapping[str, Any],
        *,
        key: str,
        thresholds: Sequence[float | None] | None,
        majority: float | None,
        tasks: Sequence[str] | None = None,
    ) -> torch.Tensor: ...


def number_option(name: str, low: float | None = None, high: float | None = None, low_open: bool = False):
    """A finite number in [low, high] (or (low, high] with `low_open`)."""

    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise MergeOptionError(f"option {name!r} must be a finite number, got {value!r}")
        if low is not None and (value < low or (low_open and value == low)):
            raise MergeOptionError(f"option {name!r} must be {'>' if low_open else '>='} {low}, got {value!r}")
        if high is not None and value > high:
            raise MergeOptionError(f"option {name!r} must be <= {high}, got {value!r}")
        return float(value)

    return check


def density_option(value):
    """The fraction of entries kept, in (0, 1]."""
    try:
        check_density(value)
    except MergeOptionError:
        raise MergeOptionError(
            f"option 'density' must be in (0, 1] (fraction of entries kept), got {value!r}"
        ) from None
    return float(value)


def choice_option(name: str, choices: tuple[str, ...]):
    def check(value):
        if value not in choices:
            raise MergeOptionError(f"option {name!r} must be one of {list(choices)}, got {value!r}")
        return value

    return check


def integer_option(name: str, low: int):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise MergeOptionError(f"option {name!r} must be an integer >= {low}, got {value!r}")
        return value

    return check


def boolean_option(name: str):
    def check(value):
        if not isinstance(value, bool):
            raise MergeOptionError(f"option {name!r} must be true or false, got {value!r}")
        return value

    return check


@dataclass(frozen=True)
class MethodSpec:
    """A merging method: its options (name -> (default, validator)), its merge function, and what it needs from the
    whole encoder: `trims` (a magnitude trim with a `scope` option), `elects_signs` (TIES' sign election), or
    `ties_base` (a `base_method` option that may be TIES, whose trim and sign election it then uses)."""

    name: str
    summary: str
    options: dict[str, tuple[Any, Callable[[Any], Any]]] = field(default_factory=dict)
    merge: MergeFunction | None = None
    trims: bool = False
    elects_signs: bool | str = False  # True, or the boolean option that switches it on (DARE's sign_election)
    ties_base: bool = False

    def resolve(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = sorted(self.options) or "none"
            raise MergeOptionError(f"method {self.name!r} has no option(s) {unknown}; its options are {known}")
        resolved = {}
        for name, (default, check) in self.options.items():
            value = options.get(name, default)
            if value is REQUIRED:
                raise MergeOptionError(f"method {self.name!r} needs option {name!r}")
            resolved[name] = None if value is None else check(value)
        return resolved

    def on_ties_base(self, options: Mapping[str, Any]) -> bool:
        return self.ties_base and options.get("base_method") == "ties"

    def trim_scope(self, options: Mapping[str, Any]) -> str | None:
        """'global' or 'tensor' when the method trims by magnitude threshold, None otherwise."""
        return options["scope"] if self.trims or self.on_ties_base(options) else None

    def uses_sign_election(self, options: Mapping[str, Any]) -> bool:
        if isinstance(self.elects_signs, str):
            return bool(options[self.elects_signs])
        return self.elects_signs or self.on_ties_base(options)


__all__ = [
    "BASE_METHODS",
    "REQUIRED",
    "MergeFunction",
    "MethodSpec",
    "boolean_option",
    "choice_option",
    "density_option",
    "integer_option",
    "number_option",
]

"""hf_simo's one logger and one progress-bar switch, with the conventions of `transformers.utils.logging`,
`accelerate.logging` and `huggingface_hub.utils.tqdm` (imports only the standard library and huggingface_hub).

Logging:

- `get_logger(__name__)` in every module: a child of the ``hf_simo`` logger. Library code logs, it never prints.
- Verbosity of the whole library: ``HF_SIMO_VERBOSITY`` (like ``TRANSFORMERS_VERBOSITY``: debug, info, warning,
  error, critical; default warning), or `set_verbosity(...)` / `set_verbosity_info()` / ... at run time;
  `get_verbosity()` reads it. Every command line sets it from ``--log_level`` (`CommonArguments`).
- Messages go to stderr as plain text through one handler on the ``hf_simo`` logger, from the main process only
  (``RANK`` 0, what `accelerate.logging.get_logger(main_process_only=True)` decides, read without importing
  accelerate), unless a record says ``extra={"main_process_only": False}``. When the application configured logging
  itself (the root logger has handlers: `logging.basicConfig`, pytest's capture), records propagate there instead,
  so nothing is printed twice.

Progress bars:

- `progress_bar(iterable, total=..., desc=...)`: a `huggingface_hub.utils.tqdm` in the ``hf_simo`` group, shown on
  the main process only. No library function takes a ``progress=`` switch.
- The one switch: `disable_progress_bars()` / `enable_progress_bars()` / `are_progress_bars_disabled()` (the
  ``hf_simo`` group), and ``HF_HUB_DISABLE_PROGRESS_BARS=1``, which wins over both, as for the Hub's own bars.
- ``--disable_tqdm`` (`CommonArguments`) silences every bar a command shows: hf_simo's, the Hub's downloads,
  transformers' and datasets'.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from huggingface_hub import utils as hub_utils

from .fields import option, require_choice


LIBRARY_NAME = "hf_simo"
VERBOSITY_ENV = "HF_SIMO_VERBOSITY"
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
DEFAULT_LEVEL = logging.WARNING

_configured = False


def is_main_process(local: bool = False) -> bool:
    """Whether this is process 0 of a launch (``RANK``; ``LOCAL_RANK`` with `local`), without importing
    accelerate or torch: accelerate, torchrun and ``accelerate launch`` all export these variables."""
    value = os.environ.get("LOCAL_RANK" if local else "RANK", "0")
    return value in ("", "0")


class MainProcessOnly(logging.Filter):
    """Drops records from processes other than the main one, unless logged with ``main_process_only=False``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "main_process_only", True) or is_main_process()


class _StderrUnlessConfigured(logging.StreamHandler):
    """stderr, as plain messages; silent when the root logger has handlers (they receive the record instead)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))
        self.addFilter(MainProcessOnly())

    @property
    def stream(self):  # the current sys.stderr, so redirections (pytest's capsys, contextlib) are honoured
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the property reads sys.stderr instead
        pass

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        super().emit(record)


def _env_level() -> int | None:
    value = os.environ.get(VERBOSITY_ENV)
    if not value:
        return None
    if value.lower() not in LOG_LEVELS:
        logging.getLogger(LIBRARY_NAME).warning(
            f"{VERBOSITY_ENV}={value!r} is not one of {', '.join(LOG_LEVELS)}; using warning"
        )
        return None
    return LOG_LEVELS[value.lower()]


def _library_root() -> logging.Logger:
    global _configured
    root = logging.getLogger(LIBRARY_NAME)
    if not _configured:
        _configured = True
        root.addHandler(_StderrUnlessConfigured())
        root.setLevel(_env_level() or DEFAULT_LEVEL)
    return root


def get_logger(name: str | None = None) -> logging.Logger:
    """The logger of module `name` (pass `__name__`), a child of the ``hf_simo`` logger; None: the library's."""
    root = _library_root()
    if name is None or name == LIBRARY_NAME:
        return root
    return logging.getLogger(name if name.startswith(LIBRARY_NAME + ".") else f"{LIBRARY_NAME}.{name}")


def get_verbosity() -> int:
    """The level of the ``hf_simo`` logger (`logging.INFO`, ...)."""
    return _library_root().getEffectiveLevel()


def set_verbosity(level: int | str) -> None:
    """Set the level of every hf_simo logger: a `logging` level or one of debug, info, warning, error, critical."""
    if isinstance(level, str):
        if level.lower() not in LOG_LEVELS:
            raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
        level = LOG_LEVELS[level.lower()]
    _library_root().setLevel(level)


def set_verbosity_debug() -> None:
    set_verbosity(logging.DEBUG)


def set_verbosity_info() -> None:
    set_verbosity(logging.INFO)


def set_verbosity_warning() -> None:
    set_verbosity(logging.WARNING)


def set_verbosity_error() -> None:
    set_verbosity(logging.ERROR)


# ---------------------------------------------------------------------------------------------- progress bars


def disable_progress_bars() -> None:
    """Hide hf_simo's progress bars (``HF_HUB_DISABLE_PROGRESS_BARS=0`` wins, with a warning)."""
    hub_utils.disable_progress_bars(LIBRARY_NAME)


def enable_progress_bars() -> None:
    """Show hf_simo's progress bars again (``HF_HUB_DISABLE_PROGRESS_BARS=1`` wins, with a warning)."""
    hub_utils.enable_progress_bars(LIBRARY_NAME)


def are_progress_bars_disabled() -> bool:
    """Whether hf_simo's bars are hidden: by `disable_progress_bars`, globally, or by ``HF_HUB_DISABLE_PROGRESS_BARS``."""
    return hub_utils.are_progress_bars_disabled(LIBRARY_NAME)


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | float | None = None,
    desc: str | None = None,
    unit: str = "it",
    leave: bool = True,
    local_main_only: bool = False,
    **kwargs: Any,
):
    """A tqdm bar over `iterable` (or a manual one with `total`), in hf_simo's group, on the main process only
    (of the node, with `local_main_only`)."""
    disable = kwargs.pop("disable", False) or not is_main_process(local=local_main_only)
    return hub_utils.tqdm(
        iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable, name=LIBRARY_NAME, **kwargs
    )


# ---------------------------------------------------------------------------------------------- command lines


@dataclass
class CommonArguments:
    """Options every `hf-simo` verb and recipe takes (added by `hf_simo.cli.runner`; the job itself never sees
    them): how much it says, whether it shows progress bars, whether an error shows its traceback."""

    log_level: str | None = option(
        None,
        "debug, info, warning, error or critical (transformers' spelling). Default: $HF_SIMO_VERBOSITY, else info.",
    )
    disable_tqdm: bool = option(
        False,
        "No progress bars (hf_simo's, the Hub's, transformers' and datasets'); HF_HUB_DISABLE_PROGRESS_BARS=1 "
        "does the same.",
    )
    debug: bool = option(False, "Show the full traceback of an error instead of one line.")

    def __post_init__(self) -> None:
        if self.log_level is not None:
            self.log_level = self.log_level.lower()
            require_choice(self, "log_level", tuple(LOG_LEVELS))

    @property
    def level(self) -> int:
        """The level asked for: --log_level, else $HF_SIMO_VERBOSITY, else info."""
        if self.log_level is not None:
            return LOG_LEVELS[self.log_level]
        return _env_level() or logging.INFO

    @contextlib.contextmanager
    def applied(self) -> Iterator[CommonArguments]:
        """Set the verbosity and the progress bars for the block, and restore them after (a command run inside
        another program, or a test, leaves no global state behind)."""
        root = _library_root()
        previous_level = root.level
        previous_bars = dict(_hub_tqdm().progress_bar_states)
        previous_env = os.environ.get("HF_DATASETS_DISABLE_PROGRESS_BARS")
        root.setLevel(self.level)
        datasets_was_enabled = None
        if self.disable_tqdm:
            hub_utils.disable_progress_bars()  # no group: hf_simo, the Hub, transformers (all huggingface_hub bars)
            os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"  # datasets imported later reads it
            datasets = sys.modules.get("datasets")
            if datasets is not None:
                datasets_was_enabled = datasets.is_progress_bar_enabled()
                datasets.disable_progress_bars()
        try:
            yield self
        finally:
            root.setLevel(previous_level)
            if self.disable_tqdm:
                states = _hub_tqdm().progress_bar_states
                states.clear()
                states.update(previous_bars)
                if previous_env is None:
                    os.environ.pop("HF_DATASETS_DISABLE_PROGRESS_BARS", None)
                else:
                    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = previous_env
                datasets = sys.modules.get("datasets")
                if datasets is not None and datasets_was_enabled:
                    datasets.enable_progress_bars()


def _hub_tqdm():
    """huggingface_hub's tqdm module, which holds the per-group on/off states (`huggingface_hub.utils.tqdm` is the
    class; the module is only reachable through `sys.modules`). Imported here: `huggingface_hub.utils` loads it
    lazily, so a fresh `hf-simo` process may not have it yet."""
    import importlib

    return importlib.import_module("huggingface_hub.utils.tqdm")


__all__ = [
    "LOG_LEVELS",
    "CommonArguments",
    "MainProcessOnly",
    "are_progress_bars_disabled",
    "disable_progress_bars",
    "enable_progress_bars",
    "get_logger",
    "get_verbosity",
    "is_main_process",
    "progress_bar",
    "set_verbosity",
    "set_verbosity_debug",
    "set_verbosity_error",
    "set_verbosity_info",
    "set_verbosity_warning",
]

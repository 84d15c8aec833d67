"""Run a function right after a module is imported (a post-import hook), so `import hf_simo` can register its
classes with transformers without importing transformers (or torch) itself.

Hand-written (about 60 lines: an `importlib.abc.MetaPathFinder` that wraps the loaders of some packages' modules)
instead of a `wrapt.register_post_import_hook` dependency. Why at all: ``import hf_simo`` and ``hf-simo --help``
must not pay for torch (seconds on these machines, issue 12's start-up target), yet transformers must know the
``simo`` model type as soon as someone uses its Auto classes or pipelines (as SpanMarker's "registered on import").

`call_after_import(triggers, callback, packages=("transformers",))`: `callback()` runs once, as soon as one of the
`triggers` has been imported *and* no module of `packages` is still half-way through its own import (the callback
imports from them, and a half-initialised module lacks names: `from hf_simo import SimoConfig` imports
transformers' Auto modules from inside `hf_simo.configuration_simo`). A package's top level (its `__init__`, which
installs the hook) does not count as in flight. If a trigger is already imported and nothing is in flight, the
callback runs at once.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any


class _HookedLoader(importlib.abc.Loader):
    """Delegates to the real loader; after `exec_module`, gives the hook a chance to run."""

    def __init__(self, loader: Any, finder: _PostImportFinder, name: str) -> None:
        self._loader, self._finder, self._name = loader, finder, name

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        self._finder.maybe_run(finished=self._name)

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, is_package, ...
        return getattr(self._loader, name)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    def __init__(self, triggers: Sequence[str], callback: Callable[[], None], packages: Sequence[str]) -> None:
        self.triggers, self.callback, self.packages = tuple(triggers), callback, tuple(packages)
        self.done = False
        self._lock = threading.RLock()
        self._running = False
        self._resolving: set[str] = set()

    def find_spec(self, fullname, path=None, target=None):
        if self.done or fullname in self._resolving or not self._watched(fullname):
            return None
        self._resolving.add(fullname)
        try:  # the spec the rest of sys.meta_path would give, with its loader wrapped
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._resolving.discard(fullname)
        if spec.loader is not None and not isinstance(spec.loader, _HookedLoader):
            spec.loader = _HookedLoader(spec.loader, self, fullname)
        return spec

    def _watched(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.packages)

    def maybe_run(self, finished: str | None = None) -> None:
        with self._lock:
            if self.done or self._running or not any(t in sys.modules for t in self.triggers):
                return
            in_flight = [
                name
                for name, module in list(sys.modules.items())
                if name != finished and name not in self.packages and self._watched(name) and _initializing(module)
            ]
            if in_flight:
                return  # the end of the last of these imports runs it
            self._running = True
            try:
                self.callback()
            finally:
                self._running = False
                self.done = True
                if self in sys.meta_path:
                    sys.meta_path.remove(self)


def _initializing(module: Any) -> bool:
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def call_after_import(
    triggers: Sequence[str], callback: Callable[[], None], packages: Sequence[str] = ("transformers",)
) -> None:
    """Run `callback` once, after the first of `triggers` is imported and no module of `packages` is mid-import
    (see the module docstring); at once if that is already the case."""
    finder = _PostImportFinder(triggers, callback, packages)
    sys.meta_path.insert(0, finder)
    finder.maybe_run()


__all__ = ["call_after_import"]

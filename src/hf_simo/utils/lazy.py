"""Lazy package exports (PEP 562): a package `__init__` lists *where* each public name lives, and the module holding
it is imported on first access only.

Every hf_simo package `__init__` is::

    from ..utils.lazy import lazy_exports

    _EXPORTS = {"merge": "hf_simo.merging.engine", "search": "hf_simo.merging.search", ...}
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
    __all__ = sorted(_EXPORTS)

so `import hf_simo.merging.arguments` (a command line's `--help`) costs nothing of the rest of the package, and
`from hf_simo.merging import merge` still works. Module paths are absolute: `tests/test_architecture.py` reads each
table as import edges, so a circle through a lazy `__init__` is still found. The table is the package's public
contract: a move inside the package edits only its own table.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any


class _LazyPackage(types.ModuleType):
    """A package some of whose exported names are also the names of its submodules (`hf_simo.merging.search`, the
    function, lives in `hf_simo/merging/search.py`).

    Importing a submodule sets it as an attribute of its package (``setattr(package, "search", <module>)``); an eager
    ``from .search import search`` in the `__init__` rebinds the name to the function right after, so the lazy table
    keeps that behaviour: the exported object wins over the submodule of the same name.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        shadowed = self.__dict__.get("__lazy_shadowed__", ())
        if name in shadowed and isinstance(value, types.ModuleType) and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


def lazy_exports(module_name: str, table: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`(__getattr__, __dir__)` for the module `module_name`, resolving each name of `table` (name -> absolute module
    path) by importing that module on first access; the value is then cached on the package.

    A name whose module path is `<package>.<name>` is that submodule's object of the same name (a function `search`
    in `search.py`), or the submodule itself when it has no such object. An unknown name raises `AttributeError` (so
    `from package import submodule` falls back to importing the submodule, as without a table).
    """
    table = dict(table)
    package = sys.modules[module_name]
    shadowed = frozenset(name for name, target in table.items() if target == f"{module_name}.{name}")
    if shadowed:
        package.__class__ = _LazyPackage
        package.__dict__["__lazy_shadowed__"] = shadowed

    def __getattr__(name: str) -> Any:  # noqa: N807 - the PEP 562 hook
        try:
            target = table[name]
        except KeyError:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}") from None
        module = importlib.import_module(target)
        value = getattr(module, name, module) if name in shadowed else getattr(module, name)
        setattr(sys.modules[module_name], name, value)
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return sorted(set(vars(sys.modules[module_name])) | set(table))

    return __getattr__, __dir__


__all__ = ["lazy_exports"]

#!/usr/bin/env python3
"""Import graph of a package, read with `ast` (nothing is imported or run).

Finds what issue 11 forbids and what the refactor must keep importable:

- import circles (strongly connected components), once over every import (lazy ones inside functions included,
  plus `importlib.import_module("literal")` and module paths written as strings, e.g. a CLI's verb table) and once
  over module-level imports only;
- private names imported across modules (`from .engine import _MergeJob`) or reached through an imported module
  (`engine._plan`), and private attributes of objects used outside the module that defines them
  (`model._check_task_names(...)`), split into names this package defines and third-party ones;
- modules over a line budget (default 450), with their top-level definitions;
- with `--consumers tests recipes benchmarks`: every package name those folders import, by module (what a move
  must keep importable or update).

    python tests/helpers/import_graph.py --src src --package hf_simo                  # report (Markdown)
    python tests/helpers/import_graph.py --src src --package hf_simo --json graph.json  # machine-readable
    python tests/helpers/import_graph.py --src src --package hf_simo --check --allow-large hf_simo.data.synthetic
        # exit 1 on any circle (lazy included), private import across modules, or module over the budget

Edges to a package (`from ..merging import merge`) go to the package's `__init__` node, which has edges to what it
imports, as at run time. A submodule importing its own ancestor for a name (`from . import __version__`) is an edge
too: it closes a real circle when the ancestor's `__init__` imports (even lazily) that submodule. Implicit parent
imports (importing `a.b` runs `a/__init__.py` first) are not edges: every child would otherwise be in a circle with
a re-exporting parent.

`tests/test_architecture.py` calls `analyse(...)` and asserts on `cycles_all`, `private_imports`, `oversized` and
`eager_closure(...)`; `tests/test_import_graph.py` checks this module on hand-made packages (so that test can fail).
Written for issue 11's plan (`plan-11/import_graph.py`); a name imported from a package's lazy table is resolved to
the module providing it (and is public: an underscored *module* exported that way is not a private import).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from dataclasses import replace as dataclasses_replace
from pathlib import Path


@dataclass
class Edge:
    source: str
    target: str
    line: int
    lazy: bool  # inside a function/method body (runs when called, not at import)
    kind: str  # "import" | "from" | "dynamic" | "string"
    names: list[str] = field(default_factory=list)
    type_checking: bool = False
    via_package: bool = False  # resolved through the importer's view of a package's lazy export table


@dataclass
class PrivateUse:
    module: str
    line: int
    name: str
    defined_in: str | None  # package module that defines it (None: third-party or unknown)
    how: str  # "from-import" | "module-attribute" | "object-attribute"
    target: str | None = None  # the module imported from / through


@dataclass
class ModuleInfo:
    name: str
    path: str
    lines: int
    code_lines: int
    is_package: bool
    definitions: list[str]
    third_party: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- discovery


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def discover(src: Path, package: str) -> dict[str, Path]:
    root = src / package.replace(".", "/")
    return {module_name(p, src): p for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts}


def resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    parts = importer.split(".")
    base = parts if is_package else parts[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


# ---------------------------------------------------------------------------------------------- one module


class _Visitor(ast.NodeVisitor):
    def __init__(self, name: str, is_package: bool, modules: set[str], package: str):
        self.name, self.is_package, self.modules, self.package = name, is_package, modules, package
        self.edges: list[Edge] = []
        self.depth = 0  # function nesting
        self.type_checking = False
        self.imported_modules: dict[str, str] = {}  # local alias -> package module (for `alias._private`)
        self.attribute_uses: list[tuple[int, str, str | None]] = []  # (line, attr, module via alias or None)
        self.third_party: set[str] = set()  # top-level distributions imported at module level (not lazily)
        self.lazy_table: dict[str, str] = {}  # exported name -> module, from `lazy_exports(__name__, {...})`
        self._in_lazy_table = False

    # scopes
    def visit_FunctionDef(self, node):  # noqa: N802
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815
    visit_Lambda = visit_FunctionDef  # noqa: N815

    def visit_If(self, node):  # noqa: N802
        test = ast.unparse(node.test)
        if test in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            previous, self.type_checking = self.type_checking, True
            for child in node.body:
                self.visit(child)
            self.type_checking = previous
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _in_package(self, target: str) -> bool:
        return target == self.package or target.startswith(self.package + ".")

    def _closest_module(self, target: str) -> str | None:
        while target and target not in self.modules:
            target = target.rpartition(".")[0]
        return target or None

    def _add(self, target: str, line: int, kind: str, names=()):
        module = self._closest_module(target)
        if module is None or module == self.name:
            return
        self.edges.append(
            Edge(self.name, module, line, self.depth > 0, kind, list(names), type_checking=self.type_checking)
        )

    def _note_third_party(self, name: str, level: int = 0) -> None:
        if level == 0 and name and not self._in_package(name) and self.depth == 0 and not self.type_checking:
            root = name.split(".")[0]
            if root not in sys.stdlib_module_names and root != "__future__":
                self.third_party.add(root)

    def visit_Import(self, node):  # noqa: N802
        for alias in node.names:
            self._note_third_party(alias.name)
            if self._in_package(alias.name):
                self._add(alias.name, node.lineno, "import")
                if alias.asname:
                    self.imported_modules[alias.asname] = self._closest_module(alias.name) or alias.name

    def visit_ImportFrom(self, node):  # noqa: N802
        target = resolve_relative(self.name, self.is_package, node.level, node.module)
        self._note_third_party(node.module or "", node.level)
        if not self._in_package(target):
            return
        plain = []
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            if sub in self.modules:  # `from . import heads`: the submodule itself
                self._add(sub, node.lineno, "from", [alias.name])
                self.imported_modules[alias.asname or alias.name] = sub
            else:
                plain.append(alias.name)
        if plain:
            self._add(target, node.lineno, "from", plain)

    def visit_Call(self, node):  # noqa: N802
        func = ast.unparse(node.func)
        if func.split(".")[-1] == "lazy_exports" and len(node.args) >= 2 and isinstance(node.args[1], ast.Dict):
            # a lazy package __init__: name -> module table (resolved per imported name, see analyse)
            for key, value in zip(node.args[1].keys, node.args[1].values):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    target = value.value
                    if target.startswith("."):
                        target = resolve_relative(
                            self.name,
                            self.is_package,
                            len(target) - len(target.lstrip(".")),
                            target.lstrip(".") or None,
                        )
                    self.lazy_table[str(key.value)] = target
            previous, self._in_lazy_table = self._in_lazy_table, True
            self.generic_visit(node)
            self._in_lazy_table = previous
            return
        if func in ("importlib.import_module", "import_module", "__import__") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                self._add(arg.value, node.lineno, "dynamic")
        self.generic_visit(node)

    def visit_Constant(self, node):  # noqa: N802
        value = node.value
        if self._in_lazy_table:
            return
        if isinstance(value, str) and value in self.modules and value != self.name and "." in value:
            # a module path written as a string (a verb table resolved with importlib): runs when used
            self.edges.append(Edge(self.name, value, node.lineno, True, "string", type_checking=self.type_checking))

    def visit_Attribute(self, node):  # noqa: N802
        if node.attr.startswith("_") and not (node.attr.startswith("__") and node.attr.endswith("__")):
            owner = ast.unparse(node.value)
            if owner not in ("self", "cls", "super()"):
                via = self.imported_modules.get(owner)
                self.attribute_uses.append((node.lineno, node.attr, via))
        self.generic_visit(node)


def private_definitions(tree: ast.Module) -> set[str]:
    """Underscore names a module defines: top-level functions/classes/assignments and class members."""
    names: set[str] = set()

    def add_targets(target):
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, ast.Attribute) and ast.unparse(target.value) in ("self", "cls"):
            names.add(target.attr)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                add_targets(element)

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                add_targets(target)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            add_targets(node.target)
    return {n for n in names if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))}


def top_level_definitions(tree: ast.Module) -> list[str]:
    out = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out.append(f"class {node.name} (l.{node.lineno}-{node.end_lineno})")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append(f"def {node.name} (l.{node.lineno}-{node.end_lineno})")
    return out


def code_line_count(text: str) -> int:
    count, in_doc = 0, False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        count += 1
    return count if not in_doc else count


# ---------------------------------------------------------------------------------------------- graph


def strongly_connected(nodes: list[str], adjacency: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components with more than one node or a self-loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(adjacency.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(adjacency.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    item = stack.pop()
                    on_stack.discard(item)
                    component.append(item)
                    if item == node:
                        break
                if len(component) > 1 or node in adjacency.get(node, ()):
                    result.append(sorted(component))
    return result


def shortest_cycle(component: list[str], adjacency: dict[str, set[str]]) -> list[str]:
    """One shortest circle through the component's first node (breadth-first search inside the component)."""
    members = set(component)
    best: list[str] | None = None
    for start in component:
        parents = {start: None}
        queue = [start]
        found = None
        while queue and found is None:
            nxt = []
            for node in queue:
                for child in sorted(adjacency.get(node, ())):
                    if child not in members:
                        continue
                    if child == start:
                        found = node
                        break
                    if child not in parents:
                        parents[child] = node
                        nxt.append(child)
                if found is not None:
                    break
            queue = nxt
        if found is None:
            continue
        path = [found]
        while parents[path[-1]] is not None:
            path.append(parents[path[-1]])
        cycle = list(reversed(path)) + [start]
        if best is None or len(cycle) < len(best):
            best = cycle
    return best or component


# ---------------------------------------------------------------------------------------------- analysis


def analyse(src: str | Path, package: str, consumers: list[str] | None = None, max_lines: int = 450) -> dict:
    src = Path(src)
    paths = discover(src, package)
    names = set(paths)
    infos: dict[str, ModuleInfo] = {}
    edges: list[Edge] = []
    privates_defined: dict[str, set[str]] = {}
    attribute_uses: dict[str, list[tuple[int, str, str | None]]] = {}
    from_imports: list[tuple[str, Edge]] = []
    lazy_tables: dict[str, dict[str, str]] = {}
    for name, path in paths.items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
        visitor = _Visitor(name, path.name == "__init__.py", names, package)
        visitor.visit(tree)
        edges += visitor.edges
        if visitor.lazy_table:
            lazy_tables[name] = visitor.lazy_table
        attribute_uses[name] = visitor.attribute_uses
        privates_defined[name] = private_definitions(tree)
        infos[name] = ModuleInfo(
            name=name,
            path=str(path),
            lines=len(text.splitlines()),
            code_lines=code_line_count(text),
            is_package=path.name == "__init__.py",
            definitions=top_level_definitions(tree),
            third_party=sorted(visitor.third_party),
        )
        from_imports += [(name, e) for e in visitor.edges if e.kind == "from"]

    # `from pkg import name` where pkg's __init__ is a lazy table: the edge goes to the module that provides `name`
    # (importing the package itself runs only the table), so circles are found through lazy __init__s without the
    # over-approximation "the package imports all its submodules"
    resolved: list[Edge] = []
    for edge in edges:
        table = lazy_tables.get(edge.target)
        if table and edge.names and all(n in table for n in edge.names):
            for target in sorted({table[n] for n in edge.names}):
                if target in names and target != edge.source:
                    names_here = [n for n in edge.names if table[n] == target]
                    resolved.append(dataclasses_replace(edge, target=target, names=names_here, via_package=True))
        else:
            resolved.append(edge)
    edges = resolved
    from_imports = [(e.source, e) for e in edges if e.kind == "from"]

    definers: dict[str, list[str]] = defaultdict(list)
    for module, defined in privates_defined.items():
        for item in defined:
            definers[item].append(module)

    # private names crossing modules
    private: list[PrivateUse] = []
    for importer, edge in from_imports:
        for item in edge.names:
            if item.startswith("_") and not (item.startswith("__") and item.endswith("__")):
                private.append(PrivateUse(importer, edge.line, item, edge.target, "from-import", edge.target))
    for edge in edges:  # a `_module` imported from outside the package that holds it
        last = edge.target.rpartition(".")[2]
        parent = edge.target.rpartition(".")[0]
        inside = edge.source == parent or edge.source.startswith(parent + ".")
        if last.startswith("_") and not last.startswith("__") and not inside and not edge.via_package:
            private.append(PrivateUse(edge.source, edge.line, last, edge.target, "private-module", edge.target))
    for module, uses in attribute_uses.items():
        for line, attr, via in uses:
            if via is not None:
                private.append(PrivateUse(module, line, attr, via, "module-attribute", via))
            elif attr not in privates_defined[module]:
                owners = sorted(definers.get(attr, []))
                private.append(
                    PrivateUse(module, line, attr, ",".join(owners) if owners else None, "object-attribute")
                )

    adjacency_all: dict[str, set[str]] = defaultdict(set)
    adjacency_eager: dict[str, set[str]] = defaultdict(set)
    for edge in edges:
        if edge.type_checking:
            continue
        adjacency_all[edge.source].add(edge.target)
        if not edge.lazy:
            adjacency_eager[edge.source].add(edge.target)
    nodes = sorted(names)
    cycles_all = strongly_connected(nodes, adjacency_all)
    cycles_eager = strongly_connected(nodes, adjacency_eager)

    def describe(component, adjacency):
        path = shortest_cycle(component, adjacency)
        steps = []
        for a, b in zip(path, path[1:]):
            hits = [e for e in edges if e.source == a and e.target == b and not e.type_checking]
            where = ", ".join(
                f"l.{e.line}{' lazy' if e.lazy else ''}{'' if e.kind in ('from', 'import') else ' ' + e.kind}"
                f"{' (' + ','.join(e.names) + ')' if e.names else ''}"
                for e in hits
            )
            steps.append({"from": a, "to": b, "where": where})
        return {"members": component, "cycle": path, "steps": steps}

    oversized = [asdict(infos[n]) for n in nodes if infos[n].lines > max_lines]
    result = {
        "package": package,
        "modules": {n: asdict(infos[n]) for n in nodes},
        "edges": [asdict(e) for e in edges],
        "cycles_all": [describe(c, adjacency_all) for c in cycles_all],
        "cycles_eager": [describe(c, adjacency_eager) for c in cycles_eager],
        "private_imports": [
            asdict(p) for p in private if p.how in ("from-import", "module-attribute", "private-module")
        ],
        "private_object_attributes": [asdict(p) for p in private if p.how == "object-attribute"],
        "oversized": oversized,
        "max_lines": max_lines,
    }
    if consumers:
        result["consumers"] = consumer_imports(src, package, names, [Path(c) for c in consumers])
    return result


def eager_closure(result: dict, start: str) -> dict:
    """Modules imported at import time of `start` (module-level edges, transitively, plus every ancestor package's
    `__init__`, which Python runs first) and the third-party packages they import at module level."""
    adjacency: dict[str, set[str]] = defaultdict(set)
    for e in result["edges"]:
        if not e["lazy"] and not e["type_checking"]:
            adjacency[e["source"]].add(e["target"])
    modules = result["modules"]
    seen: set[str] = set()
    stack = [start]
    while stack:
        name = stack.pop()
        if name in seen or name not in modules:
            continue
        seen.add(name)
        parts = name.split(".")
        stack += [".".join(parts[:i]) for i in range(1, len(parts))]  # ancestors run first
        stack += sorted(adjacency[name])
    third = defaultdict(list)
    for name in sorted(seen):
        for dist in modules[name]["third_party"]:
            third[dist].append(name)
    return {"start": start, "modules": sorted(seen), "third_party": {k: v for k, v in sorted(third.items())}}


def consumer_imports(src: Path, package: str, modules: set[str], folders: list[Path]) -> dict:
    """folder file -> [(line, module, names)] for every import of the package from outside it."""
    out: dict[str, list] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except SyntaxError:
                continue
            rows = []
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    if node.module == package or node.module.startswith(package + "."):
                        rows.append((node.lineno, node.module, [a.name for a in node.names]))
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name == package or alias.name.startswith(package + "."):
                            rows.append((node.lineno, alias.name, []))
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in modules:
                    rows.append((node.lineno, node.value, ["<string>"]))  # module names here all hold a dot
            if rows:
                out[str(path)] = sorted(rows)
    return out


# ---------------------------------------------------------------------------------------------- report


def markdown(result: dict, allow_large: set[str]) -> str:
    lines = [f"# Import graph of `{result['package']}`", ""]
    modules = result["modules"]
    lazy = sum(1 for e in result["edges"] if e["lazy"])
    lines.append(f"{len(modules)} modules, {len(result['edges'])} import edges ({lazy} lazy or string/dynamic).")
    lines.append("")
    for title, key in (
        ("Circles, lazy imports included", "cycles_all"),
        ("Circles, module-level only", "cycles_eager"),
    ):
        lines.append(f"## {title}: {len(result[key])}")
        for number, cycle in enumerate(result[key], 1):
            lines.append(f"{number}. component of {len(cycle['members'])}: {', '.join(cycle['members'])}")
            lines.append(f"   shortest circle: {' -> '.join(cycle['cycle'])}")
            for step in cycle["steps"]:
                lines.append(f"   - {step['from']} -> {step['to']}: {step['where']}")
        lines.append("")
    lines.append(f"## Private names imported across modules: {len(result['private_imports'])}")
    for p in result["private_imports"]:
        lines.append(f"- {p['module']}:{p['line']} `{p['name']}` from {p['target']} ({p['how']})")
    lines.append("")
    own = [p for p in result["private_object_attributes"] if p["defined_in"]]
    other = [p for p in result["private_object_attributes"] if not p["defined_in"]]
    lines.append(f"## Private attributes of this package's objects used in another module: {len(own)}")
    for p in own:
        lines.append(f"- {p['module']}:{p['line']} `.{p['name']}` (defined in {p['defined_in']})")
    lines.append("")
    lines.append(f"## Private attributes of third-party objects: {len(other)}")
    grouped: dict[str, list[str]] = defaultdict(list)
    for p in other:
        grouped[p["name"]].append(f"{p['module']}:{p['line']}")
    for name, where in sorted(grouped.items()):
        lines.append(f"- `.{name}`: {', '.join(where)}")
    lines.append("")
    lines.append(f"## Modules over {result['max_lines']} lines: {len(result['oversized'])}")
    for info in sorted(result["oversized"], key=lambda i: -i["lines"]):
        note = " (allowed)" if info["name"] in allow_large else ""
        lines.append(f"- {info['name']}: {info['lines']} lines, {info['code_lines']} non-blank{note}")
        for definition in info["definitions"]:
            lines.append(f"    - {definition}")
    lines.append("")
    lines.append("## Module sizes")
    lines.append("| module | lines | imports (eager / lazy) | imported by |")
    lines.append("|---|--:|--:|--:|")
    importers: dict[str, set[str]] = defaultdict(set)
    out_eager: dict[str, set[str]] = defaultdict(set)
    out_lazy: dict[str, set[str]] = defaultdict(set)
    for e in result["edges"]:
        importers[e["target"]].add(e["source"])
        (out_lazy if e["lazy"] else out_eager)[e["source"]].add(e["target"])
    for name, info in sorted(modules.items(), key=lambda kv: -kv[1]["lines"]):
        lines.append(
            f"| {name} | {info['lines']} | {len(out_eager[name])} / {len(out_lazy[name] - out_eager[name])} "
            f"| {len(importers[name])} |"
        )
    if "consumers" in result:
        lines.append("")
        lines.append("## Imports of the package from outside it (tests, recipes, benchmarks)")
        by_module: dict[str, set[str]] = defaultdict(set)
        for rows in result["consumers"].values():
            for _, module, imported in rows:
                for item in imported or ["<module>"]:
                    by_module[module].add(item)
        for module in sorted(by_module):
            lines.append(f"- {module}: {', '.join(sorted(by_module[module]))}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default="src", help="folder holding the package (default: src)")
    parser.add_argument("--package", default="hf_simo")
    parser.add_argument("--max-lines", type=int, default=450)
    parser.add_argument("--allow-large", nargs="*", default=[], help="modules allowed over --max-lines (one concept)")
    parser.add_argument("--consumers", nargs="*", default=[], help="folders importing the package (tests, recipes)")
    parser.add_argument("--json", help="also write the analysis as JSON here")
    parser.add_argument("--closure", nargs="*", default=[], help="modules whose import-time closure to list")
    parser.add_argument(
        "--forbid",
        nargs="*",
        default=[],
        help="with --check: third-party packages the --closure modules must not import",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 on circles, private imports or big modules")
    args = parser.parse_args(argv)
    result = analyse(args.src, args.package, args.consumers, args.max_lines)
    allow = set(args.allow_large)
    sys.stdout.write(markdown(result, allow))
    closures = [eager_closure(result, start) for start in args.closure]
    for closure in closures:
        sys.stdout.write(f"\n## Import-time closure of `{closure['start']}`: {len(closure['modules'])} modules\n")
        sys.stdout.write(", ".join(closure["modules"]) + "\n\n")
        for dist, where in closure["third_party"].items():
            sys.stdout.write(f"- {dist}: {', '.join(where)}\n")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.check:
        problems = len(result["cycles_all"]) + len(result["private_imports"])
        problems += sum(1 for p in result["private_object_attributes"] if p["defined_in"])
        problems += sum(1 for info in result["oversized"] if info["name"] not in allow)
        problems += sum(1 for c in closures for dist in c["third_party"] if dist in set(args.forbid))
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

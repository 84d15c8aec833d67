"""The package's layout rules (issue 11), read from the source with `ast` (tests/helpers/import_graph.py):

- no import circle, lazy imports and lazy package tables included;
- no private name imported across modules, no private attribute of this package's objects used in another module;
- no module over 450 lines unless it is one concept (`ONE_CONCEPT`);
- the command line (``hf_simo.cli`` and every verb module) imports no torch, datasets, matplotlib, peft, accelerate
  or safetensors at import time (checked statically, and in a fresh interpreter);
- one atomic-write helper: no `os.replace`, `os.rename`, `tempfile.mkstemp`/`mkdtemp` outside `hf_simo.atomic`;
- library code logs instead of printing: no `print(...)` / `accelerator.print(...)` outside `hf_simo.cli`;
- one progress-bar switch: no `tqdm` import outside `hf_simo.utils.logging`.

`KNOWN` lists the violations that remain while issue 11's work packages land, each with the package that removes
it. A check fails on a violation not in `KNOWN` *and* on a `KNOWN` entry that is gone (delete its line), so the list
always holds exactly what is left; it must be empty when the last work package (WP-C) merges.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers.import_graph import analyse, eager_closure


ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
MAX_LINES = 450
ONE_CONCEPT = {"hf_simo.data.synthetic", "hf_simo.modeling_simo"}  # allowed over the budget
HEAVY = {"torch", "datasets", "matplotlib", "peft", "accelerate", "safetensors"}
ATOMIC_HELPER = "hf_simo.atomic"
RENAMES = {"os.replace", "os.rename", "tempfile.mkstemp", "tempfile.mkdtemp", "mkstemp", "mkdtemp"}

# violation -> the work package that removes it; empty since issue 11 landed: any violation fails its check
KNOWN: dict[tuple, str] = {}


@pytest.fixture(scope="module")
def graph():
    return analyse(SRC, "hf_simo", max_lines=MAX_LINES)


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "hf_simo").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _check(kind: str, found: set[tuple]) -> None:
    known = {key for key in KNOWN if key[0] == kind}
    new = sorted(map(str, found - known))
    gone = sorted(map(str, known - found))
    assert not new, f"new {kind} violation(s): {new}"
    assert not gone, f"fixed {kind} violation(s): delete them from KNOWN in tests/test_architecture.py: {gone}"


def test_no_import_circles_lazy_imports_included(graph):
    _check("circle", {("circle", frozenset(cycle["members"])) for cycle in graph["cycles_all"]})
    assert graph["cycles_eager"] == []


def test_no_private_names_across_modules(graph):
    found = {("private-import", p["module"], p["name"]) for p in graph["private_imports"]}
    found |= {
        ("private-import", p["module"], p["name"]) for p in graph["private_object_attributes"] if p["defined_in"]
    }
    _check("private-import", found)


def test_modules_fit_the_line_budget(graph):
    _check("size", {("size", m["name"]) for m in graph["oversized"] if m["name"] not in ONE_CONCEPT})


def test_the_command_line_imports_no_heavy_package(graph):
    verbs = [name for name in graph["modules"] if name == "hf_simo.cli" or name.startswith("hf_simo.cli.")]
    assert {"hf_simo.cli", "hf_simo.cli.parser", "hf_simo.cli.runner", "hf_simo.cli.realign"} <= set(verbs)
    found = set()
    for name in verbs:
        heavy = HEAVY & set(eager_closure(graph, name)["third_party"])
        if heavy:
            found.add(("cli-imports", name))
    _check("cli-imports", found)
    light = {"hf_simo", "hf_simo.cli", "hf_simo.utils.logging", "hf_simo.errors"}
    for name in light:  # these import no transformers either
        assert "transformers" not in eager_closure(graph, name)["third_party"], name


def test_the_command_line_imports_no_torch_when_run(tmp_path):
    verbs = [name for name in _modules() if name.startswith("hf_simo.cli.") and name != "hf_simo.cli.__main__"]
    light = [name for name in verbs if ("cli-imports", name) not in KNOWN]
    code = textwrap.dedent(
        f"""
        import sys
        import hf_simo
        assert "torch" not in sys.modules and "transformers" not in sys.modules, "import hf_simo"
        from hf_simo.cli import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        assert "torch" not in sys.modules and "transformers" not in sys.modules, "hf-simo --help"
        import importlib
        for name in {light!r}:
            importlib.import_module(name)
        heavy = sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules)
        assert not heavy, heavy
        print("light")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0 and result.stdout.strip().endswith("light"), result.stderr[-3000:]


def _calls_and_imports() -> dict[str, list[tuple[str, str]]]:
    """module -> [(kind, what)] for renames, prints and tqdm imports."""
    out: dict[str, list[tuple[str, str]]] = {}
    for module, path in _modules().items():
        rows = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name in RENAMES:
                    rows.append(("atomic", name))
                if name == "print" or name.endswith("accelerator.print"):
                    rows.append(("print", name))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(n.split(".")[0] == "tqdm" for n in names):
                    rows.append(("tqdm", "import tqdm"))
        out[module] = rows
    return out


def test_one_atomic_write_helper():
    found = {
        ("atomic", module)
        for module, rows in _calls_and_imports().items()
        if module != ATOMIC_HELPER and any(kind == "atomic" for kind, _ in rows)
    }
    _check("atomic", found)


def test_library_code_logs_instead_of_printing():
    allowed = ("hf_simo.cli", "hf_simo.accelerate_configs")  # command lines print their results
    found = {
        ("print", module)
        for module, rows in _calls_and_imports().items()
        if not module.startswith(allowed) and any(kind == "print" for kind, _ in rows)
    }
    _check("print", found)


def test_one_progress_bar_switch():
    found = {
        ("tqdm", module)
        for module, rows in _calls_and_imports().items()
        if module != "hf_simo.utils.logging" and any(kind == "tqdm" for kind, _ in rows)
    }
    _check("tqdm", found)


def test_no_library_function_takes_its_own_progress_switch():
    """The one switch is hf_simo.utils.logging's: no function or method has a ``progress`` / ``verbose`` parameter
    (issue 11 removed the last ones: `merge`, `search_and_merge`, `realign`)."""
    found = set()
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = {a.arg for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]}
                found |= {(module, node.name, name) for name in names & {"progress", "verbose", "show_progress"}}
    assert not found, f"use hf_simo.utils.logging's progress-bar switch instead of a parameter: {sorted(found)}"


def test_no_transition_support_is_left():
    assert "hf_simo.cli.legacy" not in _modules()  # every verb is generated from dataclasses


def test_every_known_entry_names_its_work_package():
    assert set(KNOWN.values()) <= {"WP-A", "WP-B", "WP-C"}
    kinds = {"circle", "private-import", "size", "cli-imports", "atomic", "print", "tqdm", "transition"}
    assert {key[0] for key in KNOWN} <= kinds

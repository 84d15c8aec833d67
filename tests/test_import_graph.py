"""Self-test of tests/helpers/import_graph.py on hand-made packages, so tests/test_architecture.py can fail: lazy
circles, private names, string and `importlib` edges, the size budget, the import-time closure, lazy `__init__`
tables resolved to the providing module."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from helpers.import_graph import analyse, eager_closure


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def fake(tmp_path):
    return write(
        tmp_path,
        {
            "pkg/__init__.py": "from .model import Model\n__version__ = '1'\n",
            "pkg/model.py": "def save():\n    from .cards import card  # lazy\n    return card()\nclass Model:\n    def _check(self): ...\n",
            "pkg/cards.py": "def card():\n    from .model import Model\n    from . import __version__\n    return Model\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/engine.py": "def _plan(): ...\nclass _Job: ...\ndef public(): ...\n",
            "pkg/sub/search.py": (
                "from .engine import _Job, public\nfrom . import engine\n"
                "def f(model):\n    engine._plan()\n    model._check()\n"
            ),
            "pkg/cli.py": "VERBS = {'x': 'pkg.sub.search'}\n",
            "pkg/sub/back.py": "import importlib\nimportlib.import_module('pkg.cli')\n",
            "pkg/sub/_internal.py": "def helper(): ...\n",
            "pkg/sub/inside.py": "from ._internal import helper\n",
            "pkg/outside.py": "from .sub._internal import helper\n",
        },
    )


def test_finds_lazy_circle_but_not_at_module_level(fake):
    result = analyse(fake, "pkg")
    members = [set(c["members"]) for c in result["cycles_all"]]
    assert {"pkg.model", "pkg.cards"} <= set().union(*members)
    assert result["cycles_eager"] == []


def test_finds_private_names_across_modules(fake):
    result = analyse(fake, "pkg")
    imported = {(p["module"], p["name"]) for p in result["private_imports"]}
    assert ("pkg.sub.search", "_Job") in imported  # from-import
    assert ("pkg.sub.search", "_plan") in imported  # through the imported module
    assert ("pkg.outside", "_internal") in imported  # a private module from outside its package
    assert ("pkg.sub.inside", "_internal") not in imported  # inside its package: fine
    objects = {(p["module"], p["name"], p["defined_in"]) for p in result["private_object_attributes"]}
    assert ("pkg.sub.search", "_check", "pkg.model") in objects


def test_string_and_dynamic_module_references_are_edges(fake):
    edges = {(e["source"], e["target"], e["kind"]) for e in analyse(fake, "pkg")["edges"]}
    assert ("pkg.cli", "pkg.sub.search", "string") in edges
    assert ("pkg.sub.back", "pkg.cli", "dynamic") in edges


def test_line_budget(fake):
    (fake / "pkg" / "big.py").write_text("x = 1\n" * 451)
    assert [m["name"] for m in analyse(fake, "pkg")["oversized"]] == ["pkg.big"]


def test_import_time_closure_lists_heavy_third_party_imports(fake):
    (fake / "pkg" / "heavy.py").write_text("import numpy\n")
    (fake / "pkg" / "light.py").write_text("import json\ndef later():\n    from . import heavy\n")
    (fake / "pkg" / "eager.py").write_text("from . import heavy\n")
    result = analyse(fake, "pkg")
    assert eager_closure(result, "pkg.light")["third_party"] == {}
    assert "numpy" in eager_closure(result, "pkg.eager")["third_party"]


def test_lazy_package_tables_resolve_to_the_providing_module(tmp_path):
    root = write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/utils.py": "def lazy_exports(name, table): ...\n",
            "pkg/train/__init__.py": (
                "from ..utils import lazy_exports\n"
                "__getattr__, __dir__ = lazy_exports(__name__, {'fit': 'pkg.train.loop', 'run': 'pkg.train.job'})\n"
            ),
            "pkg/train/loop.py": "def fit(): ...\n",
            "pkg/train/job.py": "from pkg.evaluation import evaluate\ndef run(): ...\n",
            "pkg/evaluation.py": "from pkg.train import fit\ndef evaluate(): ...\n",
        },
    )
    result = analyse(root, "pkg")
    edges = {(e["source"], e["target"]) for e in result["edges"]}
    assert ("pkg.evaluation", "pkg.train.loop") in edges  # resolved through the table
    assert result["cycles_all"] == []  # no spurious circle evaluation -> train/__init__ -> job -> evaluation
    (root / "pkg" / "train" / "loop.py").write_text("from pkg.evaluation import evaluate\ndef fit(): ...\n")
    assert analyse(root, "pkg")["cycles_all"]  # a real one is still found


def test_a_private_module_exported_by_its_package_table_is_public(tmp_path):
    root = write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/utils.py": "def lazy_exports(name, table): ...\n",
            "pkg/data/__init__.py": (
                "from ..utils import lazy_exports\n"
                "__getattr__, __dir__ = lazy_exports(__name__, {'cache_root': 'pkg.data._common'})\n"
            ),
            "pkg/data/_common.py": "def cache_root(): ...\n",
            "pkg/train.py": "from pkg.data import cache_root\n",
            "pkg/eval.py": "from pkg.data._common import cache_root\n",
        },
    )
    imported = {(p["module"], p["name"]) for p in analyse(root, "pkg")["private_imports"]}
    assert ("pkg.train", "_common") not in imported  # through the package's public table
    assert ("pkg.eval", "_common") in imported  # reaching into the private module

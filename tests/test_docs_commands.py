"""Every `hf-simo <verb> ...` command line the README, docs/ and the verbs' own docstrings show parses with that
verb's parser (parse only, nothing runs), and the README's CLI table lists every verb of `hf_simo.cli.VERBS`.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

from hf_simo.cli import VERBS


ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"hf-simo (" + "|".join(VERBS) + r")\b((?:\\\||[^`|\n])*)")  # a table's \| is a choice
PLACEHOLDERS = {"...": [], "IMAGE...": ["image.png"]}


def _documented_commands() -> list[tuple[str, str, list[str]]]:
    """(where, verb, argv) of every documented command line of a dataclass verb."""
    found = []
    sources = [(path.name, path.read_text(encoding="utf-8")) for path in DOCUMENTS]
    for module, _ in VERBS.values():
        sources.append((module, importlib.import_module(module).__doc__ or ""))
    for where, text in sources:
        text = re.sub(r"\\\n\s*", " ", text)  # shell line continuations
        for match in COMMAND.finditer(text):
            verb, rest = match.group(1), match.group(2)
            if not rest.strip():  # the verb named in prose, not a command line
                continue
            rest = re.sub(r"\[([^\]]*)\]", r"\1", rest)  # optional parts: shown, so they must parse too
            rest = rest.split("#")[0].replace("\\|", "|")
            words = []
            for word in shlex.split(rest):
                if "|" in word:  # a choice: --mode head|representation
                    word = word.split("|")[0]
                words.extend(PLACEHOLDERS.get(word, [word]))
            found.append((where, verb, words))
    return found


def _dataclass_verbs() -> dict[str, object]:
    commands = {}
    for verb, (module, _) in VERBS.items():
        command = getattr(importlib.import_module(module), "COMMAND", None)
        if command is not None:
            commands[verb] = command
    return commands


def test_the_readme_lists_every_verb():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    for verb in VERBS:
        assert f"| `hf-simo {verb}" in table, verb


def test_every_documented_command_line_parses():
    commands = _dataclass_verbs()
    assert {"evaluate", "relationships", "card", "push", "predict", "demo", "realign"} <= set(commands)
    checked = 0
    for where, verb, argv in _documented_commands():
        if verb not in commands:
            continue
        try:
            commands[verb].parse(argv)
        except SystemExit as exit_:  # a usage error: argparse printed why (--help exits 0)
            if exit_.code in (0, None) and "--help" in argv:
                continue
            pytest.fail(f"{where}: `hf-simo {verb} {' '.join(argv)}` does not parse (exit {exit_.code})")
        checked += 1
    assert checked >= 8  # the README table and the verbs' docstrings


def test_an_old_spelling_in_a_document_would_fail(capsys):
    """The check can fail: a command line in the old vocabulary does not parse."""
    text = "Run `hf-simo evaluate org/m --output metrics.json --batch-size 8`."
    ((verb, rest),) = [(m.group(1), m.group(2)) for m in COMMAND.finditer(text)]
    with pytest.raises(SystemExit) as exit_:
        _dataclass_verbs()[verb].parse(shlex.split(rest))
    assert exit_.value.code == 2 and "was renamed" in capsys.readouterr().err

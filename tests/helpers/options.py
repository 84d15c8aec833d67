"""The options-reach checker: every option of a verb or recipe must take effect or be refused (issue 11, item 1).

Each work package writes a table per entry point, field name -> how the test observes it (the spied argument it
reaches, the file it changes, the refusal message), and calls `assert_every_field_covered(command, table)`: a field
of the command's dataclasses that is neither in the table nor in the command's `not_applicable` fails the test, so a
new option cannot be accepted and silently dropped again; a table entry that is not a field fails too (a renamed
option must be renamed in the table).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import ModuleType
from typing import Any


def command_fields(command: Any) -> set[str]:
    """The option names of a `hf_simo.cli.runner.Command` (or of a verb module's `COMMAND`)."""
    if isinstance(command, ModuleType):
        command = command.COMMAND
    return {f.name for cls in command.arguments for f in dataclasses.fields(cls) if f.init}


def assert_every_field_covered(command: Any, table: Mapping[str, Any]) -> None:
    """Every field of `command` is in `table` or in its `not_applicable`; `table` names only fields."""
    if isinstance(command, ModuleType):
        command = command.COMMAND
    fields = command_fields(command)
    refused = set(command.not_applicable)
    uncovered = sorted(fields - set(table) - refused)
    unknown = sorted(set(table) - fields)
    assert not uncovered, f"{command.prog}: options neither observed nor refused: {uncovered}"
    assert not unknown, f"{command.prog}: the table names options the command does not have: {unknown}"
    both = sorted(set(table) & refused)
    assert not both, f"{command.prog}: options both observed and refused as not applicable: {both}"

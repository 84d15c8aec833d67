"""Issue 11's one vocabulary (tests/helpers/vocabulary.py) against the code: every option a verb or recipe accepts
has a row (its old spelling not moved yet, or its one name), the foundation's dataclasses hold exactly the options
the vocabulary gives them, and every renamed spelling a command refuses is a row of the table."""

from __future__ import annotations

import dataclasses

import pytest

from helpers.vocabulary import CHANGES, ENTRIES, MAPPING, NEW_OPTIONS, command_of, current_options, targets
from hf_simo.analysis.arguments import RelationshipsArguments
from hf_simo.data.arguments import DataArguments
from hf_simo.hub import HubOptions, PushOptions
from hf_simo.merging.arguments import MergeMethodArguments, MergeOutputArguments, SourceArguments
from hf_simo.utils.logging import CommonArguments


def test_every_option_accepted_today_has_a_row():
    covered = set(MAPPING) | targets()
    missing = sorted(
        {(entry, owner, dest) for entry, owner, dest in current_options() if (owner, dest) not in covered}
    )
    assert not missing, f"add rows to tests/helpers/vocabulary.py for {missing}"


def test_rows_are_well_formed():
    for key, (name, owner, change, note) in MAPPING.items():
        assert change in CHANGES, key
        assert name.startswith("--") or "(positional)" in name, key
        assert owner and isinstance(note, str), key
    assert all(len(row) == 3 for row in NEW_OPTIONS)


@pytest.mark.parametrize(
    "cls",
    [SourceArguments, MergeMethodArguments, MergeOutputArguments, HubOptions, PushOptions, CommonArguments,
     RelationshipsArguments, DataArguments],
    ids=lambda c: c.__name__,
)  # fmt: skip
def test_the_foundation_dataclasses_hold_their_vocabulary(cls):
    """The dataclasses written in their final vocabulary: exactly the options the table gives their owner."""
    wanted = {dest for owner, dest in targets() if owner == cls.__name__}
    assert {f.name for f in dataclasses.fields(cls)} == wanted


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_every_renamed_spelling_a_command_refuses_is_in_the_table(entry):
    command = command_of(entry)
    for old, new in getattr(command, "renamed", {}).items():
        rows = [
            value for (owner, dest), value in MAPPING.items() if dest == old and value[2] in ("renamed", "removed")
        ]
        assert rows, f"{entry}: --{old} is refused as renamed but has no 'renamed'/'removed' row"
        if new.startswith("--"):
            assert any(new.split()[0] in value[0] for value in rows), (entry, old, new)

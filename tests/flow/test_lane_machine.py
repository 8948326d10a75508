"""The transition table is the one place that says which move is allowed; the README's diagram
and the active states come from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from merge_assist.rules.lane_machine import (
    ACTIVE_STATES, FINAL_STATES, TABLE, EntryState, Mover, allowed, command_may_cancel, render_diagram,
)
from merge_assist.storage.models import ACTIVE_STATES_SQL

README = Path(__file__).resolve().parents[2] / "README.md"


def test_final_states_have_no_way_out_and_active_ones_do() -> None:
    assert set(FINAL_STATES) == {EntryState.MERGED, EntryState.FAILED, EntryState.CANCELLED}
    assert set(ACTIVE_STATES) == set(EntryState) - set(FINAL_STATES)
    for row in TABLE:
        assert row.source not in FINAL_STATES


@pytest.mark.parametrize(("source", "cancellable"), [
    (EntryState.QUEUED, True), (EntryState.REBASING, True), (EntryState.WAITING_PIPELINE, True),
    (EntryState.MERGING, False), (EntryState.MERGED, False), (EntryState.FAILED, False),
    (EntryState.CANCELLED, False),
])
def test_a_command_may_cancel_only_before_merging(source: EntryState, cancellable: bool) -> None:
    assert command_may_cancel(source) is cancellable


@pytest.mark.parametrize(("source", "target", "mover", "expected"), [
    (EntryState.WAITING_PIPELINE, EntryState.MERGING, Mover.LANE, True),
    (EntryState.WAITING_PIPELINE, EntryState.MERGING, Mover.COMMAND, False),
    (EntryState.QUEUED, EntryState.MERGING, Mover.LANE, False),
    (EntryState.MERGING, EntryState.CANCELLED, Mover.LANE, True),
    (EntryState.MERGING, EntryState.CANCELLED, Mover.COMMAND, False),
    (EntryState.CANCELLED, EntryState.WAITING_PIPELINE, Mover.LANE, False),
    (EntryState.MERGED, EntryState.MERGED, Mover.LANE, False),
    (EntryState.FAILED, EntryState.QUEUED, Mover.COMMAND, False),
])
def test_allowed_moves(source: EntryState, target: EntryState, mover: Mover, expected: bool) -> None:
    assert allowed(source, target, mover) is expected


def test_the_database_index_uses_the_active_states_of_the_table() -> None:
    for state in EntryState:
        assert (f"'{state.value}'" in ACTIVE_STATES_SQL) is state.is_active


def test_the_readme_shows_the_diagram_generated_from_the_table() -> None:
    assert render_diagram() in README.read_text(encoding="utf-8"), \
        "README's state diagram is stale: paste render_diagram()'s output into it"

"""The lane's state machine in one place: the states of a queue entry and every allowed move.

The store applies each move as a compare-and-set on the entry's current state (and, for the
lane's own moves, on the lane's fencing token), and refuses any move that is not in
`TRANSITIONS`. Everything else (the planner, the commands, the active-state queries, the state
diagram in the README) is derived from this table, so it cannot drift.

Two kinds of writers move entries:
- the `LANE` (the worker holding the lane's lease), which drives an entry towards merged;
- a `COMMAND` (cancel, retry…) given by a person, which holds no lease. Its compare-and-set on
  the state the person saw makes the lane's next move fail, and the lane always moves an entry
  to `merging` with a compare-and-set before it calls GitLab's merge: whichever comes first wins,
  so a cancel accepted before the merge call never merges.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EntryState(str, enum.Enum):
    """Persisted state of one queued merge request."""

    QUEUED = "queued"
    REBASING = "rebasing"
    WAITING_PIPELINE = "waiting_pipeline"
    MERGING = "merging"
    MERGED = "merged"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return not TRANSITIONS[self]

    @property
    def is_active(self) -> bool:
        """In a lane and not yet finished."""
        return not self.is_final


class Mover(str, enum.Enum):
    """Who makes a move: the lane's worker (under its lease) or a person's command."""

    LANE = "lane"
    COMMAND = "command"


@dataclass(frozen=True)
class Transition:
    source: EntryState
    target: EntryState
    movers: frozenset[Mover]
    why: str


_LANE = frozenset({Mover.LANE})
_ANYONE = frozenset({Mover.LANE, Mover.COMMAND})

Q, R, W, M = EntryState.QUEUED, EntryState.REBASING, EntryState.WAITING_PIPELINE, EntryState.MERGING
DONE, FAILED, CANCELLED = EntryState.MERGED, EntryState.FAILED, EntryState.CANCELLED

TABLE: tuple[Transition, ...] = (
    Transition(Q, Q, _LANE, "why it waits changed"),
    Transition(Q, R, _LANE, "the merge method needs the MR rebased"),
    Transition(Q, W, _LANE, "validating its head"),
    Transition(Q, DONE, _LANE, "merged outside the queue"),
    Transition(Q, FAILED, _LANE, "a rule refused it"),
    Transition(Q, CANCELLED, _ANYONE, "cancelled, or the MR was closed"),
    Transition(R, W, _LANE, "rebased; validating the new head"),
    Transition(R, DONE, _LANE, "merged outside the queue"),
    Transition(R, FAILED, _LANE, "GitLab could not rebase it"),
    Transition(R, CANCELLED, _ANYONE, "cancelled, or the MR was closed"),
    Transition(W, W, _LANE, "a new head or a new reason to wait"),
    Transition(W, Q, _LANE, "train: its car was dropped; waiting for the next car"),
    Transition(W, R, _LANE, "the target moved; rebasing again"),
    Transition(W, M, _LANE, "every rule passes: merging"),
    Transition(W, DONE, _LANE, "merged outside the queue"),
    Transition(W, FAILED, _LANE, "a rule refused it or a job failed"),
    Transition(W, CANCELLED, _ANYONE, "cancelled, or the MR was closed"),
    Transition(M, DONE, _LANE, "GitLab merged it"),
    Transition(M, W, _LANE, "the head moved just before the merge"),
    Transition(M, R, _LANE, "resumed after a crash: the target moved meanwhile"),
    Transition(M, Q, _LANE, "GitLab refused the merge for now"),
    Transition(M, FAILED, _LANE, "GitLab refused the merge too often"),
    Transition(M, CANCELLED, _LANE, "the MR was closed while merging"),
)

TRANSITIONS: dict[EntryState, dict[EntryState, frozenset[Mover]]] = {state: {} for state in EntryState}
for _row in TABLE:
    TRANSITIONS[_row.source][_row.target] = _row.movers

ACTIVE_STATES: tuple[EntryState, ...] = tuple(state for state in EntryState if state.is_active)
FINAL_STATES: tuple[EntryState, ...] = tuple(state for state in EntryState if state.is_final)


def allowed(source: EntryState, target: EntryState, mover: Mover = Mover.LANE) -> bool:
    """Whether `mover` may move an entry from `source` to `target`."""
    return mover in TRANSITIONS[source].get(target, frozenset())


def command_may_cancel(state: EntryState) -> bool:
    return allowed(state, EntryState.CANCELLED, Mover.COMMAND)


def render_diagram() -> str:
    """The state diagram as Mermaid, for the README (a test keeps the README in step)."""
    lines = ["stateDiagram-v2", f"    [*] --> {EntryState.QUEUED.value}"]
    for row in TABLE:
        if row.source is row.target:
            continue
        who = "" if row.movers == _LANE else " (also by a command)"
        lines.append(f"    {row.source.value} --> {row.target.value}: {row.why}{who}")
    lines.extend(f"    {state.value} --> [*]" for state in FINAL_STATES)
    return "\n".join(lines)

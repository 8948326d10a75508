"""The store enforces the lane's transition table: every move is a compare-and-set on the entry's
state and the lane's fencing token, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

from merge_assist.rules.errors import IllegalTransition, LeaseLost
from merge_assist.rules.lane_machine import Mover
from merge_assist.rules.model import Actor, EntryState, LaneKey, Priority, QueueEntry
from merge_assist.rules.ports import Refused
from merge_assist.storage import Store, migrate

ALICE = Actor(101, "alice", "gitlab")
Q, W, M = EntryState.QUEUED, EntryState.WAITING_PIPELINE, EntryState.MERGING


def queued(store: Store, iid: int = 1) -> QueueEntry:
    return store.queue.add_entry(1, iid, "main", Priority.NORMAL, "alice")


def test_a_move_from_a_state_the_entry_is_not_in_is_refused_not_applied(store: Store) -> None:
    entry = queued(store)
    fence = store.queue.acquire(LaneKey(1, "main"), "w", 30)
    moved = store.queue.transition(entry.id, Q, W, "validating", fence=fence, tested_sha="a" * 40)
    assert isinstance(moved, QueueEntry) and moved.state is W and moved.tested_sha == "a" * 40
    stale = store.queue.transition(entry.id, Q, W, "validating again", fence=fence)
    assert isinstance(stale, Refused) and stale.entry is not None and stale.entry.state is W
    assert store.queue.get_entry(entry.id).reason == "validating"  # type: ignore[union-attr]


def test_the_table_is_enforced(store: Store) -> None:
    entry = queued(store)
    with pytest.raises(IllegalTransition):
        store.queue.transition(entry.id, Q, M, "skipping validation")
    with pytest.raises(IllegalTransition):
        store.queue.transition(entry.id, Q, W, "a person may not validate", mover=Mover.COMMAND)
    assert store.queue.get_entry(entry.id).state is Q  # type: ignore[union-attr]


def test_a_stale_fence_loses_the_lane(store: Store) -> None:
    entry = queued(store)
    lane = LaneKey(1, "main")
    old = store.queue.acquire(lane, "a", 0.0)
    new = store.queue.acquire(lane, "b", 30)
    assert old is not None and new == old + 1
    with pytest.raises(LeaseLost):
        store.queue.transition(entry.id, Q, W, "validating", fence=old)
    assert isinstance(store.queue.transition(entry.id, Q, W, "validating", fence=new), QueueEntry)


def test_a_cancel_recorded_first_makes_the_move_to_merging_fail(store: Store) -> None:
    entry = queued(store)
    fence = store.queue.acquire(LaneKey(1, "main"), "w", 30)
    entry = store.queue.transition(entry.id, Q, W, "validating", fence=fence)  # type: ignore[assignment]
    cancelled = store.queue.transition(entry.id, W, EntryState.CANCELLED, "cancelled by @alice",
                                       mover=Mover.COMMAND, actor=ALICE)
    assert isinstance(cancelled, QueueEntry)
    assert isinstance(store.queue.transition(entry.id, W, M, "merging", fence=fence), Refused)
    records = [(r.actor, r.outcome) for r in store.audit.entries(target="1!1") if r.action == "transition"]
    assert records[0] == ("alice", "cancelled")


def test_cancel_and_merge_racing_on_one_entry_exactly_one_wins(store: Store) -> None:
    """Both compare-and-sets start from `waiting_pipeline` at the same instant, 20 times over."""
    lane = LaneKey(1, "main")
    fence = store.queue.acquire(lane, "w", 300)
    for iid in range(1, 21):
        entry = queued(store, iid)
        store.queue.transition(entry.id, Q, W, "validating", fence=fence)
        barrier = threading.Barrier(2)
        results: dict[str, object] = {}

        def merge() -> None:
            barrier.wait()
            results["merge"] = store.queue.transition(entry.id, W, M, "merging", fence=fence)

        def cancel() -> None:
            barrier.wait()
            results["cancel"] = store.queue.transition(entry.id, W, EntryState.CANCELLED, "cancel",
                                                       mover=Mover.COMMAND, actor=ALICE)

        threads = [threading.Thread(target=merge), threading.Thread(target=cancel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [name for name, result in results.items() if isinstance(result, QueueEntry)]
        assert len(winners) == 1, results
        final = store.queue.get_entry(entry.id)
        assert final is not None and final.state is (M if winners == ["merge"] else EntryState.CANCELLED)


def test_priority_changes_only_active_entries_and_is_audited(store: Store) -> None:
    entry = queued(store)
    changed = store.queue.set_priority(entry.id, Priority.HIGH, actor=ALICE)
    assert isinstance(changed, QueueEntry) and changed.priority is Priority.HIGH
    store.queue.transition(entry.id, Q, EntryState.CANCELLED, "cancelled", mover=Mover.COMMAND, actor=ALICE)
    assert isinstance(store.queue.set_priority(entry.id, Priority.URGENT, actor=ALICE), Refused)
    assert [(r.actor, r.detail) for r in store.audit.entries(target="1!1") if r.action == "priority"] == \
        [("alice", "high")]

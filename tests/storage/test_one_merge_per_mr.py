"""An MR is merged once: the database refuses a second merged entry for it (migration 0006), on
SQLite and PostgreSQL, and the migration turns the double records made before it into cancelled
entries, each audited."""

from __future__ import annotations

from sqlalchemy import text

from merge_assist.rules.model import EntryState, LaneKey, Priority, QueueEntry
from merge_assist.rules.ports import Refused
from merge_assist.storage import Store, migrate

BEFORE = "0005_slack_direct_messages"
Q, W, M, MERGED = EntryState.QUEUED, EntryState.WAITING_PIPELINE, EntryState.MERGING, EntryState.MERGED


def merging(store: Store, fence: int) -> QueueEntry:
    entry = store.queue.add_entry(1, 7, "main", Priority.NORMAL, "alice")
    store.queue.transition(entry.id, Q, W, "validating", fence=fence)
    moved = store.queue.transition(entry.id, W, M, "merging", fence=fence)
    assert isinstance(moved, QueueEntry)
    return moved


def test_a_second_merged_record_of_one_mr_is_refused_and_leaves_the_entry_as_it_was(store: Store) -> None:
    fence = store.queue.acquire(LaneKey(1, "main"), "w", 30)
    assert fence is not None
    first = merging(store, fence)
    assert isinstance(store.queue.transition(first.id, M, MERGED, "merged", fence=fence), QueueEntry)
    again = merging(store, fence)  # queued again as the queue merged it: allowed, nothing is active

    refused = store.queue.transition(again.id, M, MERGED, "merged outside the queue", fence=fence)

    assert isinstance(refused, Refused) and refused.already_merged and "already recorded" in refused.reason
    assert store.queue.get_entry(again.id).state is M  # type: ignore[union-attr]
    assert store.queue.get_entry(first.id).state is MERGED  # type: ignore[union-attr]
    merged_records = [a for a in store.audit.entries(limit=100) if a.action == "transition" and a.outcome == "merged"]
    assert len(merged_records) == 1
    cancelled = store.queue.transition(again.id, M, EntryState.CANCELLED, "already merged", fence=fence)
    assert isinstance(cancelled, QueueEntry)  # the lane's way out for it


def test_migration_0006_keeps_the_first_merged_record_and_cancels_the_later_ones(db_url: str) -> None:
    store = Store.open(db_url)
    migrate.upgrade(store.db, BEFORE)
    with store.db.engine.begin() as conn:
        for iid, state in [(7, "merged"), (7, "merged"), (7, "merged"), (8, "merged"), (9, "failed")]:
            conn.execute(text(
                "INSERT INTO queue_entries (project_id, mr_iid, target_branch, priority, state, reason, "
                "requested_by, attempts, enqueued_at, updated_at) VALUES (1, :iid, 'main', 1, :state, 'merged', "
                "'alice', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"iid": iid, "state": state})

    migrate.upgrade(store.db)

    entries = sorted(store.queue.all_entries(), key=lambda e: e.id)
    assert [(e.mr_iid, e.state) for e in entries] == [
        (7, MERGED), (7, EntryState.CANCELLED), (7, EntryState.CANCELLED), (8, MERGED), (9, EntryState.FAILED)]
    assert all("migration 0006" in e.reason for e in entries if e.state is EntryState.CANCELLED)
    audited = [a for a in store.audit.entries(limit=100) if a.outcome == "cancelled"]
    assert [a.target for a in audited] == ["1!7", "1!7"]
    migrate.downgrade(store.db, BEFORE)
    migrate.upgrade(store.db)
    assert migrate.current_revision(store.db) == migrate.head_revision(store.db)
    store.db.dispose()


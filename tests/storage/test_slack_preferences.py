"""The opt-in to Slack direct messages and the requester's id on queue entries (migration 0005),
on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from merge_assist.rules.model import Priority
from merge_assist.storage import Store, migrate
from merge_assist.storage.slack_links import SlackLinks

BEFORE = "0004_accounts"


def columns(store: Store, table: str) -> set[str]:
    return {c["name"] for c in inspect(store.db.engine).get_columns(table)}


def test_migration_0005_up_and_down_keeps_rows_and_the_one_active_entry_rule(db_url: str) -> None:
    store = Store.open(db_url)
    migrate.upgrade(store.db, BEFORE)
    with store.db.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (username, gitlab_user_id, slack_user_id, created_at) "
                          "VALUES ('old', 41, 'U-OLD', CURRENT_TIMESTAMP)"))
    migrate.upgrade(store.db)
    old = store.queue.add_entry(1, 7, "main", Priority.NORMAL, "old", actor_gitlab_id=41)
    assert old.requested_by_gitlab_id == 41
    links = SlackLinks(store.db)
    assert links.notify_enabled("U-OLD") is False  # existing users start opted out
    migrate.downgrade(store.db, BEFORE)
    assert "requested_by_gitlab_id" not in columns(store, "queue_entries")
    assert "slack_notify" not in columns(store, "users")
    with store.db.engine.begin() as conn:
        assert conn.execute(text("SELECT requested_by FROM queue_entries")).scalars().all() == ["old"]
    with pytest.raises(IntegrityError), store.db.engine.begin() as conn:  # still one active entry per MR
        conn.execute(text("INSERT INTO queue_entries (project_id, mr_iid, target_branch, priority, state, reason, "
                          "requested_by, attempts, enqueued_at, updated_at) VALUES (1, 7, 'main', 1, 'queued', '', "
                          "'again', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    migrate.upgrade(store.db)
    assert migrate.current_revision(store.db) == migrate.head_revision(store.db)
    store.db.dispose()


def test_direct_messages_only_for_linked_opted_in_active_users(store: Store) -> None:
    links = SlackLinks(store.db)
    assert links.set_notify("U-ALICE", True) is None  # not linked: nothing to set
    links.link("U-ALICE", 101, "alice")
    assert links.notify_enabled("U-ALICE") is False and links.direct_message_recipient(101) is None
    assert links.set_notify("U-ALICE", True) is False
    assert links.direct_message_recipient(101) == "U-ALICE"
    links.unlink("U-ALICE")
    assert links.direct_message_recipient(101) is None
    links.link("U-ALICE", 101, "alice")
    assert links.notify_enabled("U-ALICE") is False  # a new link starts opted out
    links.set_notify("U-ALICE", True)
    links.link("U-ALICE", 202, "bob")  # the Slack account moves to another GitLab user
    assert links.direct_message_recipient(101) is None and links.direct_message_recipient(202) is None
    links.set_notify("U-ALICE", True)
    bob = links.by_slack("U-ALICE")
    assert bob is not None
    store.users.update(bob.id, active=False)
    assert links.direct_message_recipient(202) is None

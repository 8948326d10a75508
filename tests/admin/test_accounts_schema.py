"""Migration 0004_accounts up and down on SQLite and PostgreSQL, with existing users kept."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import inspect, text

from merge_assist.storage import Store, migrate

ACCOUNT_TABLES = {"auth_sessions", "sign_in_failures"}


def test_accounts_migration_up_and_down_keeps_users(db_url):
    store = Store.open(db_url)
    migrate.upgrade(store.db, "0002")
    with store.db.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (username, password_hash, created_at) "
                          "VALUES ('old', NULL, CURRENT_TIMESTAMP)"))
    migrate.upgrade(store.db, "0004_accounts")
    columns = {c["name"] for c in inspect(store.db.engine).get_columns("users")}
    assert {"email", "active", "updated_at"} <= columns
    assert ACCOUNT_TABLES <= set(inspect(store.db.engine).get_table_names())
    migrate.upgrade(store.db)  # the models read every column of later revisions too
    old = store.users.by_username("old")
    assert old is not None and old.active and old.updated_at is not None
    session_id, _ = store.sessions.start(old.id, timedelta(hours=1))
    assert store.sessions.live_user(session_id, old.id) is not None
    migrate.downgrade(store.db, "0002")
    assert not ACCOUNT_TABLES & set(inspect(store.db.engine).get_table_names())
    assert "active" not in {c["name"] for c in inspect(store.db.engine).get_columns("users")}
    with store.db.engine.connect() as conn:
        assert conn.execute(text("SELECT username FROM users")).scalars().all() == ["old"]
    migrate.upgrade(store.db)
    assert migrate.current_revision(store.db) == migrate.head_revision(store.db)
    store.db.dispose()

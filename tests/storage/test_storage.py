import pytest
from sqlalchemy import inspect, select

from merge_assist.rules.model import Actor, EntryState, LaneKey, Priority
from merge_assist.storage import Store, migrate
from merge_assist.storage.audit import AuditLogImmutable
from merge_assist.storage.models import AuditRecord
from merge_assist.storage.queue import AlreadyQueued

TABLES = {"train_cars", "users", "roles", "role_grants", "projects", "lanes", "queue_entries",
          "webhook_deliveries", "audit_log", "alembic_version", "auth_sessions", "sign_in_failures"}


def test_migrations_up_and_down(db_url):
    store = Store.open(db_url)
    migrate.upgrade(store.db)
    assert set(inspect(store.db.engine).get_table_names()) == TABLES
    assert migrate.current_revision(store.db) == migrate.head_revision(store.db)
    migrate.downgrade(store.db, "base")
    assert set(inspect(store.db.engine).get_table_names()) <= {"alembic_version"}
    assert migrate.current_revision(store.db) is None
    migrate.upgrade(store.db)
    assert "queue_entries" in inspect(store.db.engine).get_table_names()
    store.db.dispose()


def test_outdated_schema_is_refused(db_url):
    store = Store.open(db_url)
    with pytest.raises(migrate.SchemaOutdated, match="merge-assist migrate"):
        migrate.ensure_current(store.db)
    store.db.dispose()


def test_project_scoped_grant_does_not_apply_elsewhere(store):
    alice = store.users.ensure_gitlab_user("alice", 101)
    store.users.grant(alice.id, "priority_manager", project_id=7)
    assert store.users.roles_for(project_id=7, gitlab_user_id=101) == {"priority_manager"}
    assert store.users.roles_for(project_id=8, gitlab_user_id=101) == frozenset()
    store.users.grant(alice.id, "admin")
    assert store.users.roles_for(project_id=8, gitlab_user_id=101) == {"admin"}
    assert store.users.revoke(alice.id, "priority_manager", project_id=7) == 1
    assert store.users.roles_for(project_id=7, gitlab_user_id=101) == {"admin"}


def test_local_user_password_is_hashed(store):
    store.users.create_local("root", "correct horse")
    assert store.users.authenticate("root", "correct horse") is not None
    assert store.users.authenticate("root", "wrong") is None
    with store.db.session() as session:
        stored = session.execute(select(AuditRecord)).all()
        assert stored == []


def test_audit_is_append_only(store):
    actor = Actor(5, "alice", "gitlab")
    store.audit.record(actor, "command:merge", "1!2", "ok")
    assert [e.action for e in store.audit.entries()] == ["command:merge"]
    assert not hasattr(store.audit, "update") and not hasattr(store.audit, "delete")
    with pytest.raises(AuditLogImmutable):
        with store.db.session() as session:
            session.scalars(select(AuditRecord)).one().outcome = "changed"
    with pytest.raises(AuditLogImmutable):
        with store.db.session() as session:
            session.delete(session.scalars(select(AuditRecord)).one())
    from sqlalchemy import delete, update

    with pytest.raises(AuditLogImmutable):
        with store.db.session() as session:
            session.execute(update(AuditRecord).values(outcome="x"))
    with pytest.raises(AuditLogImmutable):
        with store.db.session() as session:
            session.execute(delete(AuditRecord))
    assert [e.outcome for e in store.audit.entries()] == ["ok"]


def test_queue_order_and_one_active_entry_per_mr(store):
    low = store.queue.add_entry(1, 10, "main", Priority.LOW, "a")
    normal = store.queue.add_entry(1, 11, "main", Priority.NORMAL, "b")
    urgent = store.queue.add_entry(1, 12, "main", Priority.URGENT, "c")
    store.queue.add_entry(1, 13, "release", Priority.NORMAL, "d")
    lane = LaneKey(1, "main")
    assert [e.mr_iid for e in store.queue.lane_entries(lane)] == [12, 11, 10]
    with pytest.raises(AlreadyQueued):
        store.queue.add_entry(1, 10, "main", Priority.HIGH, "a")
    store.queue.transition(urgent.id, EntryState.QUEUED, EntryState.MERGED, "merged")
    assert [e.mr_iid for e in store.queue.lane_entries(lane)] == [11, 10]
    assert store.queue.add_entry(1, 12, "main", Priority.NORMAL, "c").state is EntryState.QUEUED
    assert sorted(str(l) for l in store.queue.waiting_lanes()) == ["1:main", "1:release"]
    transitions = [e for e in store.audit.entries(target="1!12") if e.action == "transition"]
    assert transitions and transitions[0].outcome == "merged"
    assert low.id < normal.id


def test_lane_lease_is_exclusive_and_fenced(store):
    from merge_assist.rules.errors import LeaseLost

    lane = LaneKey(3, "main")
    entry = store.queue.add_entry(3, 1, "main", Priority.NORMAL, "a")
    first = store.queue.acquire(lane, "worker-a", 30)
    assert first is not None
    assert store.queue.acquire(lane, "worker-b", 30) is None
    assert store.queue.acquire(lane, "worker-a", 30) == first
    store.queue.transition(entry.id, EntryState.QUEUED, EntryState.WAITING_PIPELINE, fence=first)
    assert store.queue.acquire(lane, "worker-c", -1) is None  # still held by a
    store.queue.release(lane, "worker-a")
    second = store.queue.acquire(lane, "worker-b", 0.0)  # expires at once: stealable
    assert second == first + 1
    third = store.queue.acquire(lane, "worker-c", 30)
    assert third == second + 1
    with pytest.raises(LeaseLost):
        store.queue.transition(entry.id, EntryState.WAITING_PIPELINE, EntryState.MERGING, fence=second)
    assert store.queue.get_entry(entry.id).state is EntryState.WAITING_PIPELINE


def test_deliveries_deduplicate(store):
    assert store.deliveries.first_time("idem:1", "Note Hook")
    assert not store.deliveries.first_time("idem:1", "Note Hook")
    assert store.deliveries.seen("idem:1") and not store.deliveries.seen("idem:2")


def test_database_itself_refuses_audit_changes(store):
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    store.audit.record(Actor(5, "alice", "gitlab"), "command:merge", "1!2", "ok")
    for statement in ("UPDATE audit_log SET outcome = 'forged'", "DELETE FROM audit_log"):
        with pytest.raises(DatabaseError, match="append-only"):
            with store.db.engine.begin() as conn:
                conn.execute(text(statement))
    assert [e.outcome for e in store.audit.entries()] == ["ok"]


def test_downgrade_one_step_removes_only_the_triggers(db_url):
    from sqlalchemy import text

    store = Store.open(db_url)
    migrate.upgrade(store.db)
    migrate.downgrade(store.db, "0001")
    assert migrate.current_revision(store.db) == "0001"
    store.audit.record(Actor(5, "alice", "gitlab"), "command:merge", "1!2", "ok")
    with store.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log"))
    migrate.upgrade(store.db, "0002")
    assert migrate.current_revision(store.db) == "0002"
    store.db.dispose()


def test_delivery_claims(store):
    import time as clock

    deliveries = store.deliveries
    assert deliveries.claim("idem:7", "Note Hook", stale_after=60)
    assert not deliveries.claim("idem:7", "Note Hook", stale_after=60)  # being handled elsewhere
    deliveries.release("idem:7")  # the handler failed: a retry may take it
    assert deliveries.claim("idem:7", "Note Hook", stale_after=60)
    clock.sleep(0.05)
    assert deliveries.claim("idem:7", "Note Hook", stale_after=0.01)  # its holder died: taken over
    deliveries.mark("idem:7", "Note Hook")
    assert not deliveries.claim("idem:7", "Note Hook", stale_after=0.0)  # done for good


def test_old_delivery_keys_are_forgotten(store):
    from datetime import timedelta

    from sqlalchemy import update

    from merge_assist.storage.models import WebhookDelivery
    from merge_assist.storage.types import utcnow

    store.deliveries.mark("idem:old", "Note Hook")
    store.deliveries.mark("idem:new", "Note Hook")
    with store.db.session() as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.key == "idem:old")
                        .values(received_at=utcnow() - timedelta(days=8)))
    assert store.deliveries.forget_older_than(days=7) == 1
    assert not store.deliveries.seen("idem:old") and store.deliveries.seen("idem:new")


def test_concurrent_migrations_wait_for_each_other(pg_url):
    """Every pod's init container runs `migrate`: the first one migrates, the others find it done."""
    import threading

    stores = [Store.open(pg_url) for _ in range(3)]
    errors: list[BaseException] = []

    def run(store: Store) -> None:
        try:
            migrate.upgrade(store.db)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert migrate.current_revision(stores[0].db) == migrate.head_revision(stores[0].db)
    for store in stores:
        store.db.dispose()

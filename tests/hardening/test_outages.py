"""Redis stopped and restarted: deliveries get 503 (GitLab sends them again), none is lost, the
consumer resumes. PostgreSQL restarted: the next use of the pool works (pre-ping), no error."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Iterator

import pytest
from starlette.testclient import TestClient

from merge_assist.bot.app import create_app
from merge_assist.bot.runtime import Runtime
from merge_assist.bot.settings import Secret, Settings
from merge_assist.storage import Store, migrate
from tests.hardening.conftest import WEBHOOK_SECRET
from tests.hardening.private_services import PrivatePostgres, PrivateRedis
from tests.helpers import wait_for

NOTE = json.loads((Path(__file__).parent.parent / "bot" / "fixtures" / "note_on_merge_request.json").read_text())


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def deliver(client: TestClient, key: str) -> int:
    body = dict(NOTE, object_attributes={**NOTE["object_attributes"], "note": "/merge-assist merge"})
    return client.post("/webhooks/gitlab", content=json.dumps(body),
                       headers={"X-Gitlab-Event": "Note Hook", "X-Gitlab-Token": WEBHOOK_SECRET,
                                "Idempotency-Key": key}).status_code


def test_redis_outage_answers_503_and_loses_nothing(private_redis: PrivateRedis, tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", webhook_secret=Secret(WEBHOOK_SECRET),
                        redis_url=private_redis.url, redis_prefix="outage")
    runtime = Runtime.build(settings, run_workers=False)
    seen: list[str] = []
    stop = threading.Event()

    def consume() -> None:
        runtime.queue.consume(lambda event: seen.append(event["key"]), stop=stop.is_set, consumer="c")

    consumer = threading.Thread(target=consume, daemon=True)
    try:
        with TestClient(create_app(runtime)) as client:
            assert deliver(client, "before") == 200
            consumer.start()
            wait_for(lambda: seen == ["idem:before"], timeout=10, message="the first delivery")
            private_redis.stop()
            assert deliver(client, "during") == 503  # GitLab keeps it and delivers it again
            assert client.get("/readyz").status_code == 503
            private_redis.start()
            assert deliver(client, "during") == 200
            assert deliver(client, "after") == 200
            wait_for(lambda: seen == ["idem:before", "idem:during", "idem:after"], timeout=20,
                     message="the consumer to resume")
            assert runtime.queue.pending() == 0
    finally:
        stop.set()
        consumer.join(5)
        runtime.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().start()
    yield server
    server.stop()


def test_postgres_restart_is_invisible_to_the_next_query(private_postgres: PrivatePostgres) -> None:
    store = Store.open(private_postgres.url)
    migrate.upgrade(store.db)
    try:
        store.projects.register(7, "acme/app")
        with store.db.engine.connect(), store.db.engine.connect(), store.db.engine.connect():
            pass  # three connections wait in the pool
        private_postgres.restart()  # and all of them are dead now
        for _ in range(6):
            assert store.projects.get(7) is not None
    finally:
        store.db.dispose()



"""Shared fixtures: real PostgreSQL and Redis (a dedicated database and key prefix per test).

With CI=true a test that needs PostgreSQL or Redis fails when the server is missing, instead of
being skipped.
"""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest

from gitlab_sim import SimClock, Simulator, WebhookSettings

CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get("MERGE_ASSIST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MERGE_ASSIST_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _missing(service: str, why: str) -> None:
    message = f"{service} is not available ({why})"
    if CI:
        pytest.fail(message + "; CI=true requires it")
    pytest.skip(message)


def _pg_admin():  # type: ignore[no-untyped-def]
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=3)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def pg_available() -> bool:
    try:
        _pg_admin().close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        _missing("PostgreSQL", type(exc).__name__)
    return True


@pytest.fixture
def pg_url(pg_available: bool) -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    name = f"merge_assist_test_{uuid.uuid4().hex[:12]}"
    conn = _pg_admin()
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'merge-assist.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'merge-assist.db'}"
    return request.getfixturevalue("pg_url")  # type: ignore[no-any-return]


@pytest.fixture
def sim(tmp_path) -> Iterator[Simulator]:  # type: ignore[no-untyped-def]
    """A started GitLab simulator on a virtual clock (time moves only with `sim.clock.advance`)."""
    simulator = Simulator(tmp_path / "sim", SimClock.virtual_clock(), rebase_delay=0.02,
                          webhook_settings=WebhookSettings(backoff=0.02, timeout=5.0))
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A unique key prefix on the real Redis server; its keys are deleted afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _missing("Redis", type(exc).__name__)
    prefix = f"ma-test-{uuid.uuid4().hex[:10]}"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def redis_url(redis_prefix: str) -> str:
    return REDIS_URL

"""Shared fixtures: real PostgreSQL and Redis (a dedicated database and key prefix per test), the
GitLab simulator, and plain-data rule contexts and engines for the rules and plugins tests.

With CI=true a test that needs PostgreSQL or Redis fails when the server is missing, instead of
being skipped.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import pytest

from gitlab_sim import SimClock, Simulator, WebhookSettings
from merge_assist.plugins import BUILTIN_PLUGINS
from merge_assist.storage import Store, migrate
from merge_assist.rules.engine import RuleEngine
from merge_assist.rules import metrics as metrics_port
from merge_assist.rules.metrics import RecordingMetrics
from merge_assist.rules.model import Approvals, MergeRequest, Pipeline, Project, RuleContext
from merge_assist.rules.plugins import build_plugin_manager

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
def store(db_url: str) -> Iterator[Store]:
    """A migrated store on each database of `db_url`."""
    opened = Store.open(db_url)
    migrate.upgrade(opened.db)
    yield opened
    opened.db.dispose()


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


# -- rules and plugins: plain data, no GitLab ------------------------------------------------

SHA = "a" * 40
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)  # a Wednesday


def base_context() -> RuleContext:
    project = Project(id=7, path="team/app")
    mr = MergeRequest(
        project_id=7, iid=42, title="ABC-123 add login", author_id=1, author_username="alice",
        source_branch="feature", target_branch="main", state="opened", sha=SHA,
        head_pipeline=Pipeline(id=900, sha=SHA, status="success"),
    )
    return RuleContext(project=project, merge_request=mr, approvals=Approvals(), options={}, now=NOW)


ContextFactory = Callable[..., RuleContext]


@pytest.fixture
def make_context() -> ContextFactory:
    """make_context(mr={...}, project={...}, approvals=Approvals(...), options={...}, ...)."""

    def build(mr: dict[str, Any] | None = None, project: dict[str, Any] | None = None, **fields: Any) -> RuleContext:
        context = base_context()
        return replace(
            context,
            merge_request=replace(context.merge_request, **(mr or {})),
            project=replace(context.project, **(project or {})),
            **fields,
        )

    return build


@pytest.fixture
def metrics() -> RecordingMetrics:
    return RecordingMetrics()


@pytest.fixture
def recording() -> Iterator[RecordingMetrics]:
    """A RecordingMetrics installed as the process-wide METRICS for one test."""
    before = metrics_port.installed()
    recording = RecordingMetrics()
    metrics_port.install(recording)
    yield recording
    metrics_port.install(before)


@pytest.fixture
def make_engine(metrics: RecordingMetrics) -> Callable[..., RuleEngine]:
    """make_engine(*extra_plugins, builtins=BUILTIN_PLUGINS) → RuleEngine (no entry points)."""

    def build(*extra: object, builtins: tuple[Any, ...] = BUILTIN_PLUGINS) -> RuleEngine:
        pm = build_plugin_manager(builtins, load_entry_points=False, extra=extra)
        return RuleEngine(pm, metrics)

    return build


@pytest.fixture
def engine(make_engine: Callable[..., RuleEngine]) -> RuleEngine:
    return make_engine()

"""Finding 4: poison events are refused at the webhook and, if one still reaches a worker,
dead-lettered after one failed try with its reason (not retried 14 times)."""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
import redis
from sqlalchemy import exc as sa_exc

from merge_assist.adapters.failures import is_poison
from merge_assist.adapters.queues import InProcessQueue, RedisStreamQueue
from merge_assist.adapters.read_cache import LocalEpochs, ReadInvalidation
from merge_assist.bot.dispatch import EventHandler
from merge_assist.rules.errors import GitLabError, NotFound, TransientGitLabError
from merge_assist.rules.metrics import RecordingMetrics
from merge_assist.storage import Store, migrate
from tests.hardening.conftest import WEBHOOK_SECRET
from tests.helpers import wait_for

FIXTURES = Path(__file__).parent.parent / "bot" / "fixtures"
NOTE = json.loads((FIXTURES / "note_on_merge_request.json").read_text())


def poisoned(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(NOTE)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


POISON_BODIES = {
    "project id 2^63": poisoned(("project_id",), 2**63),
    "note id 2^64": poisoned(("object_attributes", "id"), 2**64),
    "note id not numeric": poisoned(("object_attributes", "id"), "12a"),
    "merge request not a dict": poisoned(("merge_request",), [1, 2]),
    "user not a dict": poisoned(("user",), "root"),
    "note not a string": poisoned(("object_attributes", "note"), {"text": "/merge-assist merge"}),
    "iid negative": poisoned(("merge_request", "iid"), -1),
    "system not a flag": poisoned(("object_attributes", "system"), "yes"),
}


@pytest.mark.parametrize("name", sorted(POISON_BODIES))
def test_poison_payloads_are_refused_with_400_and_not_queued(name: str, client, runtime) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/webhooks/gitlab", content=json.dumps(POISON_BODIES[name]),
                           headers={"X-Gitlab-Event": "Note Hook", "X-Gitlab-Token": WEBHOOK_SECRET})
    assert response.status_code == 400, response.text
    assert runtime.queue.pending() == 0


class RecordingCommands:
    def __init__(self) -> None:
        self.calls = 0

    def known_commands(self) -> list[str]:
        return ["merge", "help"]

    def execute(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1

    def reply_unknown(self, *args: Any) -> None:
        self.calls += 1


class NoLanes:
    def drive(self, lane: Any) -> None:
        raise AssertionError("no lane work expected")

    def job_failed(self, lane: Any, sha: str, job_name: str) -> None:
        raise AssertionError("no lane work expected")


def counting(handler: EventHandler) -> tuple[Callable[[dict[str, Any]], None], list[int]]:
    calls: list[int] = []

    def handle(event: dict[str, Any]) -> None:
        calls.append(1)
        handler.handle(event)

    return handle, calls


@pytest.fixture
def event_handler(tmp_path: Path) -> EventHandler:
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(store.db)
    return EventHandler(store, RecordingCommands(), NoLanes(), NoLanes(), bot_user_id=lambda: None,  # type: ignore[arg-type]
                        caches=ReadInvalidation(LocalEpochs()), claim_seconds=30)


def unvalidated_event(body: dict[str, Any]) -> dict[str, Any]:
    """As a message queued by an older version, before payloads were validated at the webhook."""
    return {"kind": "gitlab", "event": "Note Hook", "key": "k-poison", "body": body}


def run_consumer(queue: Any, handler: Callable[[dict[str, Any]], None]) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=queue.consume, args=(handler,), kwargs={"stop": stop.is_set, "consumer": "c"},
                              daemon=True)
    thread.start()
    return stop, thread


def test_in_process_poison_event_is_dead_lettered_after_one_try(event_handler: EventHandler,
                                                                recording: RecordingMetrics) -> None:
    queue = InProcessQueue(first_delay=0.01)
    handle, calls = counting(event_handler)
    queue.publish(unvalidated_event(POISON_BODIES["project id 2^63"]))
    queue.publish(unvalidated_event({**NOTE, "object_attributes": "not a dict"}))
    stop, thread = run_consumer(queue, handle)
    try:
        wait_for(lambda: len(queue.dead_letters) == 2 and queue.pending() == 0, timeout=10)
    finally:
        stop.set()
        thread.join(3)
    assert len(calls) == 2
    assert recording.count("dead_letter", "poison") == 2
    reasons = [reason for _event, reason in queue.dead_letters]
    assert any("Overflow" in r or "too large" in r or "int" in r for r in reasons), reasons
    assert any("AttributeError" in r for r in reasons), reasons


@pytest.mark.redis
def test_redis_poison_event_is_dead_lettered_after_one_try_with_its_reason(
        event_handler: EventHandler, redis_url: str, redis_prefix: str) -> None:
    queue = RedisStreamQueue(redis_url, redis_prefix, reclaim_idle_ms=100)
    handle, calls = counting(event_handler)
    queue.publish(unvalidated_event({**NOTE, "user": "not a dict"}))
    stop, thread = run_consumer(queue, handle)
    client = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: client.xlen(queue.dead_letters) == 1 and queue.pending() == 0, timeout=10)
    finally:
        stop.set()
        thread.join(3)
    assert len(calls) == 1
    [(_id, fields)] = client.xrange(queue.dead_letters)
    assert b"AttributeError" in fields[b"reason"]


@pytest.mark.parametrize("error, poison", [
    (KeyError("iid"), True),
    (ValueError("invalid literal for int()"), True),
    (OverflowError("int too big"), True),
    (NotFound(404, "no such MR"), True),
    (GitLabError(403, "forbidden"), True),
    (TransientGitLabError(502, "bad gateway"), False),
    (GitLabError(429, "slow down"), False),
    (GitLabError(None, "unknown"), False),
    (ConnectionError("reset"), False),
    (TimeoutError(), False),
    (RuntimeError("lease lost"), False),
    (sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")), False),
    (sa_exc.DataError("INSERT", {}, Exception("integer out of range")), True),
    (redis.ConnectionError("gone"), False),
])
def test_poison_classification(error: BaseException, poison: bool) -> None:
    assert is_poison(error) is poison
